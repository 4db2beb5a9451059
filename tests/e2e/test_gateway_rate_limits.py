"""Local rate limits: per route, stricter on writes, a JSON 429 with retry-after beyond them.

The gateway runs with STRICT_LIMITS (conftest.py): buckets that do not refill during a test.
Nothing listens behind it, so a request the limiter lets through ends as a 503 and shows up
as a failed connection in the cluster's counters; a limited one never reaches the cluster.
"""

from __future__ import annotations

import grpc
from shop.orders.v1 import orders_service_pb2, orders_service_pb2_grpc

from tests.e2e.conftest import STRICT_LIMITS
from tests.support.gateway import call, token_for
from tools.runner.gateway import Gateway

GRPC_RESOURCE_EXHAUSTED = 8
ORDER = {"lines": [{"productId": "prd_1", "quantity": 1}]}


def connection_attempts(gateway: Gateway, cluster: str) -> int:
    return gateway.stats().get(f"cluster.{cluster}.upstream_cx_connect_fail", 0)


def test_writes_beyond_the_limit_get_429_and_never_reach_the_service(
    strict_gateway: Gateway,
) -> None:
    token = token_for("alice")
    burst = STRICT_LIMITS.writes.burst
    passed = [
        call(strict_gateway, "POST", "/v1/orders", token=token, body=ORDER) for _ in range(burst)
    ]
    assert [r.status for r in passed] == [503] * burst
    attempts = connection_attempts(strict_gateway, "orders")
    assert attempts == burst

    limited = call(strict_gateway, "POST", "/v1/orders", token=token, body=ORDER)

    assert limited.status == 429
    assert limited.headers["retry-after"] == str(STRICT_LIMITS.writes.fill_interval_s)
    assert limited.content_type == "application/json"
    assert limited.json()["code"] == GRPC_RESOURCE_EXHAUSTED
    assert connection_attempts(strict_gateway, "orders") == attempts


def test_reads_keep_their_own_bucket_when_writes_are_exhausted(strict_gateway: Gateway) -> None:
    token = token_for("alice")
    for _ in range(STRICT_LIMITS.writes.burst + 1):
        call(strict_gateway, "POST", "/v1/orders", token=token, body=ORDER)

    assert call(strict_gateway, "GET", "/v1/orders", token=token).status == 503


def test_each_route_has_its_own_bucket(strict_gateway: Gateway) -> None:
    token = token_for("alice")
    for _ in range(STRICT_LIMITS.writes.burst + 1):
        call(strict_gateway, "POST", "/v1/orders", token=token, body=ORDER)

    product = {"sku": "mug", "name": "Mug", "unitPriceMinor": 100, "currencyCode": "EUR"}
    assert call(strict_gateway, "POST", "/v1/products", token=token, body=product).status == 503


def test_grpc_beyond_the_limit_is_resource_exhausted(strict_gateway: Gateway) -> None:
    metadata = (("authorization", f"Bearer {token_for('alice')}"),)
    codes = []
    with grpc.insecure_channel(f"127.0.0.1:{strict_gateway.topology.gateway_port}") as channel:
        stub = orders_service_pb2_grpc.OrdersServiceStub(channel)
        for _ in range(STRICT_LIMITS.grpc.burst + 1):
            try:
                stub.ListOrders(
                    orders_service_pb2.ListOrdersRequest(), metadata=metadata, timeout=10
                )
            except grpc.RpcError as error:
                codes.append(error.code())
    burst = STRICT_LIMITS.grpc.burst
    assert codes == [grpc.StatusCode.UNAVAILABLE] * burst + [grpc.StatusCode.RESOURCE_EXHAUSTED]
