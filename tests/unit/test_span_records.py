"""What runtime/tracing.py writes: the JSON line of each span (formatted by hand for speed, so
checked here against a JSON parser, quotes and links included, and read back by
runtime/trace_files.py), and the PRODUCER spans staging records as instants: the child of the
current span, asking the sampler, with the traceparent the message carries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode

from runtime import tracing
from runtime.trace_files import load_spans


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
        outer.set_attribute("order.id", 'ord-"1"')
        with tracer.start_as_current_span("inner") as inner:
            inner.set_status(Status(StatusCode.ERROR, "no"))
    path = tmp_path / "traces" / "orders.1.jsonl"
    exporter = tracing.JsonLinesExporter(path, "orders")
    exporter.export(spans.get_finished_spans())
    exporter.shutdown()

    first_line, inner_line, outer_line = (
        json.loads(line) for line in path.read_text().splitlines()
    )
    assert first_line["parent_span_id"] is None and first_line["links"] == []
    assert outer_line["name"] == 'a "quoted"\nname' and outer_line["kind"] == "SERVER"
    assert outer_line["attributes"] == {"order.id": 'ord-"1"'}
    assert outer_line["links"] == [
        {"trace_id": first_line["trace_id"], "span_id": first_line["span_id"]}
    ]
    assert inner_line["parent_span_id"] == outer_line["span_id"]
    assert inner_line["status"] == "ERROR" and inner_line["service"] == "orders"
    assert inner_line["end_ns"] >= inner_line["start_ns"] > 0
    assert {s.name for s in load_spans(tmp_path)} == {"first", "inner", 'a "quoted"\nname'}


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """runtime.tracing as `configure` leaves it, its processor writing to memory."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    processor = SimpleSpanProcessor(spans)
    provider.add_span_processor(processor)
    monkeypatch.setattr(tracing, "_provider", provider)
    monkeypatch.setattr(tracing, "_processor", processor)
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("concord"))
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
