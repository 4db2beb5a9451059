"""`make bench`'s table, JSON and PNG, on rows made up here: what the runner writes whatever the
figures measured (no benchmark runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import collect, publish
from bench.report import markdown, table
from bench.rows import Row, met

ROWS = [
    Row("orders CONFIRMED/s / JetStream round trips/s", 150.0, "orders/s", 3000.0, 0.05, ">= 0.05"),
    Row("CPU ms per confirmed order", 16.2, "ms", 1.0, 16.2, "<= 8"),
    Row("order load: snapshots / none", 0.1, "ms", 10.0, 0.01, None),
]


def test_a_row_meets_its_target_by_its_ratio() -> None:
    assert [met(row) for row in ROWS] == [True, False, None]


def test_a_target_that_is_not_an_operator_and_a_number_is_refused() -> None:
    with pytest.raises(ValueError, match="not '<op> <number>'"):
        met(Row("x", 1.0, "", 1.0, 1.0, "about 1"))


def test_the_table_has_one_line_a_row_with_its_verdict() -> None:
    lines = table(ROWS).splitlines()
    assert lines[0].split() == ["figure", "measured", "baseline", "ratio", "target", "met?"]
    assert len(lines) == 2 + len(ROWS)
    assert lines[2].rstrip().endswith("yes") and lines[3].rstrip().endswith("NO")
    assert lines[4].rstrip().endswith("-")


def test_the_results_are_written_as_json_and_drawn_as_png(tmp_path: Path) -> None:
    publish(ROWS, ["bench.outbox_relay: not in this tree, skipped"], tmp_path)
    document = json.loads((tmp_path / "bench.json").read_text())
    assert [r["figure"] for r in document["rows"]] == [r.figure for r in ROWS]
    assert [r["met"] for r in document["rows"]] == [True, False, None]
    assert document["machine"]["nproc"] >= 1
    assert document["notes"] == ["bench.outbox_relay: not in this tree, skipped"]
    assert (tmp_path / "bench.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_a_figure_module_missing_from_the_tree_is_skipped_with_a_note() -> None:
    rows, notes, healthy = collect(
        ["bench.no_such_figure"], optional=frozenset({"bench.no_such_figure"})
    )
    assert (rows, healthy) == ([], True)
    assert notes == ["bench.no_such_figure: not in this tree, skipped"]


def test_the_last_results_read_back_as_a_markdown_table(tmp_path: Path) -> None:
    publish(ROWS, [], tmp_path)
    text = markdown(json.loads((tmp_path / "bench.json").read_text()))
    assert "| figure | measured | baseline | ratio | target | met? |" in text
    assert "| CPU ms per confirmed order | 16.2 ms | 1 | 16.2 | <= 8 | **no** |" in text
