"""One real figure of `make bench` in its quick mode, end to end through the runner: the order
snapshot figure (an orders event store on a temporary SQLite file). Checks the row is whole,
never how fast anything was."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.__main__ import collect, publish


def test_the_snapshot_figure_runs_quick_and_lands_in_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_QUICK", "1")
    rows, notes, healthy = collect(["bench.order_snapshots"])
    assert healthy and notes == []
    [row] = rows
    assert row.value > 0 and row.baseline > 0
    assert row.ratio == pytest.approx(row.value / row.baseline)
    publish(rows, notes, tmp_path)
    assert (tmp_path / "bench.json").exists() and (tmp_path / "bench.png").exists()
