"""The SERVER and CLIENT spans of runtime/rpc_tracing.py on a real grpc.aio server and channel
over loopback: the server's span is the child of the client's, both carry the semantic
conventions' `rpc.*` attributes and the final status code, platform chatter gets none, and the
services' clients name the method a stub call goes to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from shop.inventory.v1 import inventory_service_pb2_grpc

from runtime.clients import _MethodPaths
from runtime.grpc_errors import DomainErrorInterceptor
from runtime.rpc_tracing import ServerSpans, client_span
from tests.support.spans import recorded_spans

SAY = "/concord.test.v1.EchoService/Say"


async def _say(
    request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
) -> health_pb2.HealthCheckRequest:
    """Echoes its request (any message does: the platform's interceptors want protobuf)."""
    if request.service == "missing":
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
    if request.service == "boom":
        raise RuntimeError("a bug")
    return request


@dataclass
class Traced:
    channel: grpc.aio.Channel
    spans: InMemorySpanExporter

    async def say(self, text: str) -> str:
        call = self.channel.unary_unary(
            SAY,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckRequest.FromString,
        )
        with client_span(SAY) as metadata:
            reply = await call(health_pb2.HealthCheckRequest(service=text), metadata=metadata)
            return str(reply.service)

    def finished(self, kind: SpanKind) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.kind == kind]


@pytest.fixture
async def traced(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Traced]:
    with recorded_spans(monkeypatch) as spans:
        async with _echo_server() as channel:
            yield Traced(channel, spans)


@asynccontextmanager
async def _echo_server() -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server(interceptors=[ServerSpans(), DomainErrorInterceptor()])
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "concord.test.v1.EchoService",
                {
                    "Say": grpc.unary_unary_rpc_method_handler(
                        _say,
                        request_deserializer=health_pb2.HealthCheckRequest.FromString,
                        response_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                    )
                },
            ),
        )
    )
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel
    finally:
        await channel.close()
        await server.stop(None)


async def test_the_server_span_is_the_child_of_the_client_span(traced: Traced) -> None:
    assert await traced.say("hello") == "hello"

    [client] = traced.finished(SpanKind.CLIENT)
    [server] = traced.finished(SpanKind.SERVER)
    assert client.name == server.name == SAY
    assert server.parent is not None and server.parent.is_remote
    assert server.parent.span_id == client.context.span_id
    assert server.context.trace_id == client.context.trace_id
    for span in (client, server):
        assert dict(span.attributes or {}) == {
            "rpc.system": "grpc",
            "rpc.service": "concord.test.v1.EchoService",
            "rpc.method": "Say",
            "rpc.grpc.status_code": 0,
        }
        assert span.status.status_code == StatusCode.UNSET


async def test_a_refusal_marks_both_spans_with_its_code(traced: Traced) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await traced.say("missing")
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND

    for kind in (SpanKind.CLIENT, SpanKind.SERVER):
        [span] = traced.finished(kind)
        assert (span.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
        assert span.status.status_code == StatusCode.ERROR
        assert span.status.description == "no such thing"


async def test_a_handler_that_fails_leaves_an_error_span_not_a_hole(traced: Traced) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await traced.say("boom")
    assert failed.value.code() == grpc.StatusCode.INTERNAL  # DomainErrorInterceptor's answer

    [server] = traced.finished(SpanKind.SERVER)
    assert (server.attributes or {})["rpc.grpc.status_code"] == grpc.StatusCode.INTERNAL.value[0]
    assert server.status.status_code == StatusCode.ERROR


async def test_health_probes_make_no_spans(traced: Traced) -> None:
    reply = await health_pb2_grpc.HealthStub(traced.channel).Check(
        health_pb2.HealthCheckRequest(), timeout=5
    )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert traced.spans.get_finished_spans() == ()


def test_a_client_span_is_named_after_the_method_the_stub_calls() -> None:
    paths = inventory_service_pb2_grpc.InventoryServiceStub(_MethodPaths())  # type: ignore[arg-type]
    assert paths.BatchGetProducts == "/shop.inventory.v1.InventoryService/BatchGetProducts"
