"""`devstack trace`'s reading of span files: which traces belong to an order, and the
waterfall's order, indentation, offsets and durations."""

from __future__ import annotations

import json
from pathlib import Path

from runtime.trace_files import load_spans, order_traces
from tools.devstack.traces import waterfall

MS = 1_000_000


def span(
    trace: str,
    span_id: str,
    parent: str | None,
    name: str,
    start_ms: int,
    end_ms: int,
    **attrs: str,
) -> dict[str, object]:
    return {
        "trace_id": trace * 32,
        "span_id": span_id * 16,
        "parent_span_id": parent * 16 if parent else None,
        "name": name,
        "kind": "INTERNAL",
        "service": "orders",
        "start_ns": start_ms * MS,
        "end_ns": end_ms * MS,
        "status": "UNSET",
        "attributes": attrs,
        "links": [],
    }


def write(data_dir: Path, name: str, *spans: dict[str, object]) -> None:
    folder = data_dir / "traces"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / name).open("a") as out:
        for record in spans:
            out.write(json.dumps(record) + "\n")


def test_an_orders_traces_are_those_with_a_span_naming_it(tmp_path: Path) -> None:
    write(tmp_path, "orders.1.jsonl", span("a", "1", None, "place", 0, 10, **{"order.id": "o1"}))
    write(tmp_path, "inventory.2.jsonl", span("a", "2", "1", "reserve", 2, 5))
    write(tmp_path, "orders.3.jsonl", span("b", "3", None, "other", 0, 1, **{"order.id": "o2"}))
    with (tmp_path / "traces" / "orders.3.jsonl").open("a") as out:
        out.write('{"trace_id": "cut off mid-wr')  # a process killed mid-write

    found = order_traces(load_spans(tmp_path), "o1")

    assert list(found) == ["a" * 32]
    assert [s.name for s in found["a" * 32]] == ["place", "reserve"]
    assert order_traces(load_spans(tmp_path), "o3") == {}


def test_the_waterfall_indents_children_under_their_parent_in_start_order(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        "orders.1.jsonl",
        span("a", "1", "9", "place", 0, 100, **{"order.id": "o1"}),  # parent: Envoy's span
        span("a", "3", "1", "second", 50, 100),
        span("a", "2", "1", "first", 10, 20),
        span("a", "4", "2", "grandchild", 12, 13),
    )
    spans = order_traces(load_spans(tmp_path), "o1")["a" * 32]

    lines = waterfall(spans)

    names = [line.split("|", 2)[2][1:].split(" [")[0] for line in lines]
    assert names == ["place", "  first", "    grandchild", "  second"]
    assert lines[1].startswith("     10.0 ms      10.0 ms |")
    assert lines[0].split("|")[1] == "█" * 30  # the root spans the whole timeline
