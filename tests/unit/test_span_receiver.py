"""The registry's span receiver (registry/span_receiver.py): what an OTLP sender (Envoy) exports
is written as the services' span lines, read back by runtime/trace_files.py with its ids,
parent, kind, status, attributes and links, in a file named after the sender's service."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from registry.span_receiver import SpanReceiver
from runtime.trace_files import load_spans

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def _value(key: str, **value: object) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(**value))  # type: ignore[arg-type]


def request() -> trace_service_pb2.ExportTraceServiceRequest:
    span = trace_pb2.Span(
        trace_id=TRACE,
        span_id=bytes.fromhex("b7ad6b7169203331"),
        parent_span_id=bytes.fromhex("00f067aa0ba902b7"),
        name="ingress",
        kind=trace_pb2.Span.SPAN_KIND_SERVER,
        start_time_unix_nano=1_000,
        end_time_unix_nano=5_000,
        attributes=[
            _value("http.method", string_value="POST"),
            _value("http.status_code", int_value=503),
            _value("upstream.retried", bool_value=True),
        ],
        links=[trace_pb2.Span.Link(trace_id=TRACE, span_id=bytes.fromhex("00f067aa0ba902b8"))],
        status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_ERROR, message="upstream"),
    )
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[
            trace_pb2.ResourceSpans(
                resource=resource_pb2.Resource(
                    attributes=[_value("service.name", string_value="gateway")]
                ),
                scope_spans=[trace_pb2.ScopeSpans(spans=[span])],
            )
        ]
    )


def test_an_exported_span_is_written_as_a_span_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONCORD_TRACING", "on")
    receiver = SpanReceiver(tmp_path)

    asyncio.run(receiver.Export(request(), None))  # type: ignore[arg-type]

    assert (tmp_path / "traces" / f"gateway.{os.getpid()}.jsonl").exists()
    [span] = load_spans(tmp_path)
    assert (span.trace_id, span.span_id, span.parent_span_id) == (
        TRACE.hex(),
        "b7ad6b7169203331",
        "00f067aa0ba902b7",
    )
    assert (span.service, span.name, span.kind, span.status) == (
        "gateway",
        "ingress",
        "SERVER",
        "ERROR",
    )
    assert (span.start_ns, span.end_ns) == (1_000, 5_000)
    assert span.attributes == {
        "http.method": "POST",
        "http.status_code": 503,
        "upstream.retried": True,
    }
    assert span.links == ((TRACE.hex(), "00f067aa0ba902b8"),)


def test_with_tracing_off_what_arrives_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONCORD_TRACING", "off")

    asyncio.run(SpanReceiver(tmp_path).Export(request(), None))  # type: ignore[arg-type]

    assert load_spans(tmp_path) == []
