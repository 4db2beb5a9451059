"""The gateway's spans into the span files: an OTLP/gRPC trace receiver (the collector's own
TraceService contract, from the opentelemetry-proto package) that writes what it receives as
the JSON lines the services write (runtime/span_files.py), each batch flushed as it is written
(so nothing waits for a stop to be closed).

Envoy exports its spans over OTLP only. With OTEL_EXPORTER_OTLP_ENDPOINT set they go to that
collector, with everyone else's; without it (`make up`, the tests) nothing received them, so
the trace in the files started below the gateway, at orders' SERVER span, whose parent was
missing. The gateway's renderer points Envoy's `otlp_collector` cluster at the registry then
(tools/runner/gateway.py), and `devstack trace` and the console show the whole trace. Ours
rather than an OpenTelemetry Collector: the Collector ships as a Go binary from GitHub, not
from the package registries this project installs from, and this is one file a service.

Spans are converted to the SDK's ReadableSpan and written by the same JsonLinesExporter, so
the line format, rotation and pruning are the services' own: one file a sender's
`service.name` (`gateway.<registry pid>.jsonl`). With tracing off (CONCORD_TRACING=off) what
arrives is acknowledged and dropped, as a service would not record it either.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from runtime import tracing
from runtime.span_files import ENDED_FILES_KEPT, JsonLinesExporter, max_file_bytes, traces_dir

SERVICE_NAME = trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name
_KINDS = {
    trace_pb2.Span.SPAN_KIND_SERVER: SpanKind.SERVER,
    trace_pb2.Span.SPAN_KIND_CLIENT: SpanKind.CLIENT,
    trace_pb2.Span.SPAN_KIND_PRODUCER: SpanKind.PRODUCER,
    trace_pb2.Span.SPAN_KIND_CONSUMER: SpanKind.CONSUMER,
}
_STATUS = {
    trace_pb2.Status.STATUS_CODE_OK: StatusCode.OK,
    trace_pb2.Status.STATUS_CODE_ERROR: StatusCode.ERROR,
}


class SpanReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, data_dir: Path) -> None:
        self._folder = traces_dir(data_dir)
        self._exporters: dict[str, JsonLinesExporter] = {}
        self._resources: dict[tuple[tuple[str, AttributeValue], ...], Resource] = {}

    async def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext,
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        if tracing.enabled():
            await asyncio.to_thread(self._write, request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def _write(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            pairs = tuple(_attributes(resource_spans.resource.attributes))
            service = str(dict(pairs).get("service.name") or "unknown_service")
            resource = self._resource(pairs)
            spans = [
                readable(span, resource, InstrumentationScope(scope_spans.scope.name or service))
                for scope_spans in resource_spans.scope_spans
                for span in scope_spans.spans
            ]
            if spans:
                self._exporter(service).export(spans)

    def _resource(self, pairs: tuple[tuple[str, AttributeValue], ...]) -> Resource:
        """Resource.create runs the SDK's detectors: once a sender, not once a request."""
        if pairs not in self._resources:
            self._resources[pairs] = Resource.create(dict(pairs))
        return self._resources[pairs]

    def _exporter(self, service: str) -> JsonLinesExporter:
        if service not in self._exporters:
            self._exporters[service] = JsonLinesExporter(
                self._folder, service, os.getpid(), max_file_bytes(), ENDED_FILES_KEPT
            )
        return self._exporters[service]


def readable(span: trace_pb2.Span, resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
    """One received span as the SDK's finished span."""
    trace_id = int.from_bytes(span.trace_id, "big")
    parent = (
        SpanContext(trace_id, int.from_bytes(span.parent_span_id, "big"), is_remote=True)
        if span.parent_span_id
        else None
    )
    return ReadableSpan(
        name=span.name,
        context=SpanContext(
            trace_id,
            int.from_bytes(span.span_id, "big"),
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        ),
        parent=parent,
        resource=resource,
        attributes=dict(_attributes(span.attributes)),
        links=[
            Link(
                SpanContext(
                    int.from_bytes(link.trace_id, "big"),
                    int.from_bytes(link.span_id, "big"),
                    is_remote=True,
                )
            )
            for link in span.links
        ],
        kind=_KINDS.get(span.kind, SpanKind.INTERNAL),
        status=Status(_STATUS.get(span.status.code, StatusCode.UNSET), span.status.message or None),
        start_time=span.start_time_unix_nano,
        end_time=span.end_time_unix_nano,
        instrumentation_scope=scope,
    )


def _attributes(
    pairs: Iterable[common_pb2.KeyValue],
) -> Iterable[tuple[str, AttributeValue]]:
    for pair in pairs:
        value = pair.value
        kind = value.WhichOneof("value")
        if kind in ("string_value", "bool_value", "int_value", "double_value"):
            yield pair.key, getattr(value, kind)
        elif kind is not None:
            yield pair.key, str(getattr(value, kind))  # arrays, maps, bytes: as text
