"""What a gRPC client gets when the gateway itself refuses its call: always a gRPC status that
says why, never a reset stream (INTERNAL) or a status guessed from an HTTP code (UNKNOWN).

Envoy answers gRPC callers trailers-only and derives grpc-status from the HTTP status of its
own reply unless told otherwise; gateway/envoy.yaml.tmpl maps the cases where that guess is
wrong, and its edge filter answers what the HTTP/2 codec would only reset (docs/gateway.md).
"""

from __future__ import annotations

import socket
from pathlib import Path

import grpc
import pytest
from shop.orders.v1 import orders_service_pb2, orders_service_pb2_grpc

from tests.e2e.conftest import STRICT_LIMITS
from tests.support.gateway import running_gateway, token_for
from tools.runner.gateway import Gateway, GatewaySettings
from tools.runner.topology import Topology

Metadata = tuple[tuple[str, str], ...]


def authorised(*extra: tuple[str, str]) -> Metadata:
    return (("authorization", f"Bearer {token_for('alice')}"), *extra)


def refused_list_orders(
    gateway: Gateway,
    metadata: Metadata,
    request: orders_service_pb2.ListOrdersRequest | None = None,
) -> grpc.RpcError:
    with grpc.insecure_channel(f"127.0.0.1:{gateway.topology.gateway_port}") as channel:
        stub = orders_service_pb2_grpc.OrdersServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.ListOrders(
                request or orders_service_pb2.ListOrdersRequest(), metadata=metadata, timeout=10
            )
    return raised.value


def test_message_over_one_mebibyte_is_resource_exhausted(lone_gateway: Gateway) -> None:
    big = orders_service_pb2.ListOrdersRequest(page_token="x" * (2 * 1024 * 1024))
    error = refused_list_orders(lone_gateway, authorised(), big)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.details() == "request message larger than 1048576 bytes"


def test_metadata_key_with_underscore_is_invalid_argument(lone_gateway: Gateway) -> None:
    error = refused_list_orders(lone_gateway, authorised(("x_customer_id", "mallory")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "x_customer_id" in error.details()


def test_metadata_over_the_size_limit_is_resource_exhausted(lone_gateway: Gateway) -> None:
    error = refused_list_orders(lone_gateway, authorised(("x-padding", "x" * (40 * 1024))))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "32 KiB" in error.details()


def test_too_many_metadata_entries_is_resource_exhausted(lone_gateway: Gateway) -> None:
    many = tuple((f"x-entry-{i}", "1") for i in range(150))
    error = refused_list_orders(lone_gateway, authorised(*many))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_lowercase_bearer_scheme_is_accepted(lone_gateway: Gateway) -> None:
    error = refused_list_orders(lone_gateway, (("authorization", f"bearer {token_for('a')}"),))
    assert error.code() == grpc.StatusCode.UNAVAILABLE  # authenticated; nothing behind Envoy


def test_bad_token_is_unauthenticated(lone_gateway: Gateway) -> None:
    error = refused_list_orders(lone_gateway, (("authorization", "Bearer not-a-jwt"),))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_unknown_service_is_unimplemented(lone_gateway: Gateway) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{lone_gateway.topology.gateway_port}") as channel:
        call = channel.unary_unary("/shop.nothing.v1.NothingService/Nothing")
        with pytest.raises(grpc.RpcError) as raised:
            call(b"", metadata=authorised(), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_rate_limited_call_is_resource_exhausted_with_retry_after(
    strict_gateway: Gateway,
) -> None:
    for _ in range(STRICT_LIMITS.grpc.per_customer.burst):
        refused_list_orders(strict_gateway, authorised())
    error = refused_list_orders(strict_gateway, authorised())
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    trailers = dict(error.trailing_metadata() or ())
    assert trailers["retry-after"] == str(STRICT_LIMITS.grpc.retry_after_s)


def test_route_timeout_is_deadline_exceeded(tmp_path: Path, silent_upstream: socket.socket) -> None:
    topology = Topology.on_free_ports(tmp_path).with_port(
        "orders", silent_upstream.getsockname()[1]
    )
    with running_gateway(topology, GatewaySettings(write_timeout_s=1)) as gateway:
        error = refused_list_orders(gateway, authorised())
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "timeout" in error.details()
