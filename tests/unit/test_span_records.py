"""What runtime/tracing.py writes: the JSON line of each span (runtime/span_files.py formats it
by hand for speed, so it is checked here against a JSON parser, quotes and links included, and
read back by runtime/trace_files.py), the files' bounds on disk, and the PRODUCER spans staging
records as instants: the child of the current span, asking the sampler, with the traceparent
the message carries."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from runtime import tracing
from runtime.span_files import JsonLinesExporter
from runtime.trace_files import load_spans
from tests.support.spans import recorded_spans

GONE_PID = 999_999_999
"""Above any Linux pid_max: no process has it."""


def test_every_line_is_the_json_of_its_span(tmp_path: Path) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("first") as first:
        pass
    with tracer.start_as_current_span(
        'a "quoted"\nname', links=[Link(first.get_span_context())], kind=SpanKind.SERVER
    ) as outer:
        outer.set_attributes({"order.id": 'ord-"1"', "attempt": 2, "retried": True, "note": "café"})
        with tracer.start_as_current_span("inner") as inner:
            inner.set_status(Status(StatusCode.ERROR, "no"))
    exporter = JsonLinesExporter(tmp_path / "traces", "orders", os.getpid(), 2**20, 4)
    exporter.export(spans.get_finished_spans())
    exporter.shutdown()

    first_line, inner_line, outer_line = (
        json.loads(line) for line in exporter.path.read_text().splitlines()
    )
    assert first_line["parent_span_id"] is None and first_line["links"] == []
    assert outer_line["name"] == 'a "quoted"\nname' and outer_line["kind"] == "SERVER"
    assert outer_line["attributes"] == {
        "order.id": 'ord-"1"',
        "attempt": 2,
        "retried": True,
        "note": "café",
    }
    assert outer_line["links"] == [
        {"trace_id": first_line["trace_id"], "span_id": first_line["span_id"]}
    ]
    assert inner_line["parent_span_id"] == outer_line["span_id"]
    assert inner_line["status"] == "ERROR" and inner_line["service"] == "orders"
    assert inner_line["end_ns"] >= inner_line["start_ns"] > 0
    assert {s.name for s in load_spans(tmp_path)} == {"first", "inner", 'a "quoted"\nname'}


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    with recorded_spans(monkeypatch) as spans:
        yield spans


def test_a_staged_message_is_the_child_of_the_work_that_staged_it(
    configured: InMemorySpanExporter,
) -> None:
    with tracing.step("saga start", "ord-1") as step:
        traceparent = tracing.produced("shop.orders.events.OrderPlaced", "m-1", "OrderPlaced")
    [producer] = [s for s in configured.get_finished_spans() if s.kind == SpanKind.PRODUCER]
    assert producer.parent is not None
    assert producer.parent.span_id == step.get_span_context().span_id
    assert producer.context.trace_id == step.get_span_context().trace_id
    assert producer.name == "shop.orders.events.OrderPlaced publish"
    assert (producer.attributes or {})["messaging.message.id"] == "m-1"
    assert traceparent == (
        f"00-{producer.context.trace_id:032x}-{producer.context.span_id:016x}-01"
    )
    consumer_parent = tracing.context_of(traceparent)
    assert consumer_parent is not None
    assert trace.get_current_span(consumer_parent).get_span_context() == SpanContext(
        producer.context.trace_id, producer.context.span_id, True, producer.context.trace_flags
    )


def test_an_unsampled_trace_stays_unsampled_and_records_nothing(
    configured: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tracing._provider is not None
    monkeypatch.setattr(tracing._provider, "sampler", ParentBased(ALWAYS_OFF))
    traceparent = tracing.produced("shop.orders.events.OrderPlaced", "m-2", "OrderPlaced")
    assert traceparent is not None and traceparent.endswith("-00")
    assert configured.get_finished_spans() == ()


def _spans(count: int) -> list[ReadableSpan]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("test")
    for n in range(count):
        with tracer.start_as_current_span(f"span {n}", attributes={"n": n}):
            pass
    return list(spans.get_finished_spans())


def test_a_full_file_becomes_the_previous_one_and_no_more_are_kept(tmp_path: Path) -> None:
    folder = tmp_path / "traces"
    exporter = JsonLinesExporter(folder, "orders", os.getpid(), max_bytes=4096, ended_kept=4)
    spans = _spans(200)
    for start in range(0, len(spans), 10):
        exporter.export(spans[start : start + 10])
    exporter.shutdown()

    assert sorted(p.name for p in folder.iterdir()) == [
        f"orders.{os.getpid()}.jsonl",
        f"orders.{os.getpid()}.previous.jsonl",
    ]
    assert all(p.stat().st_size < 4096 + 10 * 400 for p in folder.iterdir())
    kept = sorted(int(s.attributes["n"]) for s in load_spans(tmp_path))
    assert kept == list(range(200 - len(kept), 200))  # the newest, none missing between


def test_only_the_newest_files_of_ended_processes_are_kept(tmp_path: Path) -> None:
    folder = tmp_path / "traces"
    folder.mkdir()
    ended = [folder / f"orders.{GONE_PID - n}.jsonl" for n in range(4)]
    for age, path in enumerate(ended):
        path.write_text("{}\n")
        os.utime(path, (time.time() - 100 * age, time.time() - 100 * age))
    running = folder / f"orders.{os.getpid()}.previous.jsonl"
    other_service = folder / f"inventory.{GONE_PID}.jsonl"
    for path in (running, other_service):
        path.write_text("{}\n")
        os.utime(path, (time.time() - 1000, time.time() - 1000))

    JsonLinesExporter(folder, "orders", os.getpid(), 2**20, ended_kept=2).shutdown()

    assert sorted(folder.iterdir()) == sorted(
        [*ended[:2], running, other_service, folder / f"orders.{os.getpid()}.jsonl"]
    )


def test_a_live_span_is_recorded_once_with_what_was_set_on_it(
    configured: InMemorySpanExporter,
) -> None:
    with pytest.raises(ValueError), tracing.step("saga start", "ord-1", attempt=2) as span:
        tracing.tag_order("ord-1")
        span.set_attribute("saga.step", "RESERVING")
        raise ValueError("no stock")
    span.end()  # a second end records nothing more
    span.set_attribute("late", True)

    [recorded] = configured.get_finished_spans()
    assert dict(recorded.attributes or {}) == {
        "order.id": "ord-1",
        "attempt": 2,
        "saga.step": "RESERVING",
    }
    assert recorded.status.status_code == StatusCode.ERROR
    assert recorded.status.description == "ValueError: no stock"
    [event] = recorded.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == "ValueError"
    assert "no stock" in str((event.attributes or {})["exception.stacktrace"])
    assert recorded.end_time is not None and recorded.start_time is not None
    assert recorded.end_time >= recorded.start_time
    # what the OTLP exporter sends is built from the same record
    [resource_spans] = encode_spans([recorded]).resource_spans
    [exported] = resource_spans.scope_spans[0].spans
    assert exported.name == "saga start" and exported.events[0].name == "exception"


def test_a_span_the_sampler_drops_still_carries_its_context_on(
    configured: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert tracing._provider is not None
    monkeypatch.setattr(tracing._provider, "sampler", ParentBased(ALWAYS_OFF))
    with tracing.step("saga start", "ord-1") as span:
        assert not span.is_recording()
        traceparent = tracing.produced("shop.orders.events.OrderPlaced", "m-3", "OrderPlaced")
    assert traceparent is not None
    assert traceparent.split("-")[1] == f"{span.get_span_context().trace_id:032x}"
    assert configured.get_finished_spans() == ()


def test_the_current_traceparent_is_what_the_w3c_propagator_writes(
    configured: InMemorySpanExporter,
) -> None:
    assert tracing.current_traceparent() is None
    with tracing.step("settle authorisation", "ord-1"):
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        assert tracing.current_traceparent() == carrier["traceparent"]
