"""What a peer may do, decided once per call from its verified certificate (mutual TLS only).

transport_security.py lets only peers with a certificate from our CA finish the handshake.
This interceptor then holds every call (but health, which probes without a certificate may
use) to two rules:
- the peer's certificate must name a Concord process (`spiffe://concord.local/<process>`);
  otherwise UNAUTHENTICATED;
- only the gateway's certificate may carry a customer's identity (`x-customer-id`,
  `x-customer-roles`: the gateway sets them from a verified token); from any other peer those
  headers are PERMISSION_DENIED, so a service cannot act as a customer, nor a customer's copy
  of the headers pass through anything but the gateway.
A call with no identity metadata from a Concord process that is not the gateway is an internal
call (runtime/caller.py); from the gateway it has no customer, and caller.py refuses it where a
customer or role is needed. Without TLS nothing here runs: plaintext stays on loopback.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from runtime.caller import CUSTOMER_HEADER, ROLES_HEADER
from runtime.grpc_errors import with_unary
from runtime.logs import get_logger
from runtime.transport_security import GATEWAY_IDENTITY, IDENTITY_PREFIX, peer_identity

log = get_logger(__name__)

OPEN_METHODS_PREFIX = "/grpc.health.v1.Health/"
"""Health answers anyone who reaches it: the registry probes it with its certificate, and a
Kubernetes probe (which cannot present one) reaches it on the plaintext health port."""


def carries_customer(metadata: Any) -> bool:
    return any(key in (CUSTOMER_HEADER, ROLES_HEADER) for key, _ in metadata or ())


async def check(context: grpc.aio.ServicerContext, method: str) -> None:
    """Aborts the call when the peer may not make it; see the module docstring."""
    peer = peer_identity(context)
    if peer is None:
        log.warning("call_refused_unknown_peer", method=method, peer=context.peer())
        await context.abort(
            grpc.StatusCode.UNAUTHENTICATED,
            f"no client certificate naming a Concord process ({IDENTITY_PREFIX}<process>) "
            "from the Concord CA: off loopback every caller needs one",
        )
    if peer != GATEWAY_IDENTITY and carries_customer(context.invocation_metadata()):
        log.warning("customer_headers_refused", method=method, peer=peer)
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            f"{CUSTOMER_HEADER}/{ROLES_HEADER} are accepted only from the gateway "
            f"({GATEWAY_IDENTITY}); this call came from {peer}",
        )


Handler = Callable[..., Any]


def _guarded(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    if handler.unary_unary is not None:
        unary_unary = handler.unary_unary

        async def uu(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await check(context, method)
            return await unary_unary(request, context)

        return with_unary(handler, uu)
    if handler.stream_unary is not None:
        stream_unary = handler.stream_unary

        async def su(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            await check(context, method)
            return await stream_unary(requests, context)

        return grpc.stream_unary_rpc_method_handler(
            su, handler.request_deserializer, handler.response_serializer
        )
    streaming: Handler = handler.unary_stream or handler.stream_stream

    async def streamed(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await check(context, method)
        replies = streaming(request, context)
        if inspect.isasyncgen(replies):
            async for reply in replies:
                yield reply
        else:
            await replies  # a handler that writes with context.write()

    make = (
        grpc.unary_stream_rpc_method_handler
        if handler.unary_stream is not None
        else grpc.stream_stream_rpc_method_handler
    )
    return make(streamed, handler.request_deserializer, handler.response_serializer)


class PeerTrustInterceptor(grpc.aio.ServerInterceptor):
    """Installed on servers that listen with mutual TLS (runtime/server.py)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_METHODS_PREFIX):
            return handler
        return _guarded(handler, method)
