"""SERVER and CLIENT spans for unary gRPC calls, with the names, kinds and `rpc.*` attributes of
OpenTelemetry's semantic conventions, and the W3C `traceparent` in the call's metadata.

Our own rather than opentelemetry-instrumentation-grpc's interceptors, for their cost alone:
measured on one process calling itself (an echo RPC), its server interceptor added about
175 µs of CPU a call and its client interceptor about 200 µs, where a span costs a few tens
(it wraps the servicer context in a proxy, parses the peer address and copies the metadata
on every call, and its client side runs grpc.aio's interceptor machinery and awaits the
call's code and details). With ~7 traced calls an order that alone was half of what tracing
took off saga throughput, over issue 14's 10% budget; these spans cost about half as much.
What they leave out: the peer address and user agent attributes, and streaming calls (the
only one, the registry's Watch, is platform chatter that is not traced anyway).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import grpc
from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from runtime import tracing
from runtime.grpc_errors import UnaryBehavior, final_code, with_unary

HEADER = "traceparent"
Metadata = tuple[tuple[str, str], ...]
RPC_SYSTEM = "rpc.system"
RPC_SERVICE = "rpc.service"
RPC_METHOD = "rpc.method"
RPC_GRPC_STATUS_CODE = "rpc.grpc.status_code"
UNTRACED_METHODS = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.",
    "/concord.registry.v1.DiscoveryService/",
    "/opentelemetry.proto.collector.",
)
"""Platform chatter, not work for anyone: health probes, reflection, registration heartbeats
and lookups, and spans exported to the registry (registry/span_receiver.py). Tracing them would
cost a span every probe interval per process, and an export would trace itself."""


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    """SERVER spans for a server of this process; none when tracing is off."""
    return [ServerSpans()] if tracing.active() else []


def client_span(method: str) -> AbstractContextManager[Metadata]:
    """A CLIENT span around one unary call to `method` (`/package.Service/Method`); its value is
    the metadata that carries the span to the callee (nothing when tracing is off)."""
    return _client_span(method) if tracing.active() else nullcontext(())


def traced(method: str) -> bool:
    return not method.startswith(UNTRACED_METHODS)


def _attributes(method: str) -> dict[str, AttributeValue]:
    service, _, name = method[1:].partition("/")
    return {RPC_SYSTEM: "grpc", RPC_SERVICE: service, RPC_METHOD: name}


def _end_with(span: trace.Span, code: grpc.StatusCode, details: str | None) -> None:
    span.set_attribute(RPC_GRPC_STATUS_CODE, code.value[0])
    if code is not grpc.StatusCode.OK:
        span.set_status(Status(StatusCode.ERROR, details or code.name))


class ServerSpans(grpc.aio.ServerInterceptor):
    """A SERVER span around every traced unary call, the child of the caller's `traceparent`."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method
        if handler is None or handler.unary_unary is None or not traced(method):
            return handler
        caller = next((v for k, v in details.invocation_metadata or () if k == HEADER), None)
        return with_unary(handler, self._spanned(handler.unary_unary, method, caller))

    def _spanned(self, behavior: UnaryBehavior, method: str, caller: str | None) -> UnaryBehavior:
        async def handler(request: Any, servicer_context: grpc.aio.ServicerContext) -> Any:
            span = tracing.start(
                method, SpanKind.SERVER, _attributes(method), tracing.context_of(caller)
            )
            token = context.attach(trace.set_span_in_context(span))
            try:
                result = await behavior(request, servicer_context)
            except BaseException:
                code = final_code(servicer_context) or grpc.StatusCode.UNKNOWN
                _end_with(span, code, servicer_context.details())
                raise
            else:
                _end_with(span, final_code(servicer_context) or grpc.StatusCode.OK, None)
                return result
            finally:
                context.detach(token)
                span.end()

        return handler


@contextmanager
def _client_span(method: str) -> Iterator[Metadata]:
    span = tracing.start(method, SpanKind.CLIENT, _attributes(method))
    token = context.attach(trace.set_span_in_context(span))
    try:
        yield ((HEADER, tracing.traceparent_of(span)),)
    except grpc.aio.AioRpcError as error:
        _end_with(span, error.code(), error.details())
        raise
    except BaseException as error:
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        raise
    else:
        _end_with(span, grpc.StatusCode.OK, None)
    finally:
        context.detach(token)
        span.end()
