"""Reading span files (runtime/trace_files.py): which traces belong to an order, the trace
query's refusals (spans sent to OTLP, no trace), and `devstack trace`'s waterfall order,
indentation, offsets and durations."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from runtime.errors import FailedPreconditionError, NotFoundError
from runtime.trace_files import (
    TraceFiles,
    load_spans,
    order_traces,
    order_traces_in,
)
from runtime.tracing import OTLP_ENDPOINT_ENV
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

    found = order_traces_in(tmp_path, "o1")

    assert list(found) == ["a" * 32]
    assert [s.name for s in found["a" * 32]] == ["place", "reserve"]
    assert order_traces_in(tmp_path, "o3") == {}
    assert order_traces_in(tmp_path, "o1") == order_traces(load_spans(tmp_path), "o1")


def test_an_id_inside_another_attribute_does_not_make_a_trace_the_orders(
    tmp_path: Path,
) -> None:
    write(tmp_path, "orders.1.jsonl", span("a", "1", None, "place", 0, 10, **{"order.id": "o1"}))
    write(tmp_path, "orders.1.jsonl", span("c", "5", None, "note", 0, 1, note="about o1"))
    write(tmp_path, "payments.2.jsonl", span("a", "6", "1", "authorise", 1, 2))

    found = order_traces_in(tmp_path, "o1")

    assert list(found) == ["a" * 32]
    assert [s.name for s in found["a" * 32]] == ["place", "authorise"]


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


def test_the_trace_query_answers_an_orders_traces_and_says_why_when_it_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = TraceFiles(tmp_path)
    monkeypatch.delenv(OTLP_ENDPOINT_ENV, raising=False)
    with pytest.raises(FailedPreconditionError, match="no span files"):
        asyncio.run(files.order_traces("o1"))
    write(tmp_path, "orders.1.jsonl", span("a", "1", None, "place", 0, 10, **{"order.id": "o1"}))

    assert list(asyncio.run(files.order_traces("o1"))) == ["a" * 32]
    with pytest.raises(NotFoundError):
        asyncio.run(files.order_traces("o2"))
    monkeypatch.setenv(OTLP_ENDPOINT_ENV, "http://collector:4317")
    with pytest.raises(FailedPreconditionError, match="collector:4317"):
        asyncio.run(files.order_traces("o1"))
