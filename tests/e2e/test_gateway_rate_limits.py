"""Local rate limits: buckets per customer and a global guard per route, stricter on writes, a
JSON 429 with retry-after beyond them.

The gateway runs with STRICT_LIMITS (conftest.py), or GUARDED_LIMITS here: buckets that do not
refill during a test. Nothing listens behind it, so a request the limiter lets through ends as
a 503 (UNAVAILABLE for gRPC) and shows up as a failed connection in the cluster's counters; a
limited one never reaches the cluster.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from shop.orders.v1 import orders_service_pb2, orders_service_pb2_grpc

from tests.e2e.conftest import STRICT_LIMITS, never_refilled
from tests.support.gateway import Reply, call, running_gateway, token_for
from tools.runner.gateway import Gateway, GatewaySettings
from tools.runner.gateway_limits import settings_from_environment
from tools.runner.topology import Topology

GRPC_RESOURCE_EXHAUSTED = 8
ORDER = {"lines": [{"productId": "prd_1", "quantity": 1}]}
WRITES_PER_CUSTOMER = STRICT_LIMITS.writes.per_customer.burst
GUARDED_LIMITS = GatewaySettings(
    reads=never_refilled(per_customer=4, global_guard=1000),
    writes=never_refilled(per_customer=2, global_guard=5),
    grpc=never_refilled(per_customer=2, global_guard=3),
)
"""Global guards a few customers together exceed, each staying within their own bucket."""


@pytest.fixture
def guarded_gateway(topology: Topology) -> Iterator[Gateway]:
    with running_gateway(topology, GUARDED_LIMITS) as gateway:
        yield gateway


def connection_attempts(gateway: Gateway, cluster: str) -> int:
    return gateway.stats().get(f"cluster.{cluster}.upstream_cx_connect_fail", 0)


def attempts_for(gateway: Gateway, requests: int) -> int:
    """The connections `requests` admitted requests make when nothing listens: each is retried
    on a connect failure (tools/runner/routes.py)."""
    return requests * (1 + gateway.settings.retry_attempts)


def place_orders(gateway: Gateway, customer: str, count: int) -> list[int]:
    token = token_for(customer)
    return [
        call(gateway, "POST", "/v1/orders", token=token, body=ORDER).status for _ in range(count)
    ]


def list_orders(gateway: Gateway, customer: str, count: int) -> list[grpc.StatusCode]:
    """The status of each of `count` gRPC ListOrders calls as `customer`."""
    metadata = (("authorization", f"Bearer {token_for(customer)}"),)
    codes = []
    with grpc.insecure_channel(f"127.0.0.1:{gateway.topology.gateway_port}") as channel:
        stub = orders_service_pb2_grpc.OrdersServiceStub(channel)
        for _ in range(count):
            try:
                stub.ListOrders(
                    orders_service_pb2.ListOrdersRequest(), metadata=metadata, timeout=10
                )
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                codes.append(error.code())
    return codes


def assert_rate_limited(reply: Reply, retry_after_s: int) -> None:
    """Today's refusal, whichever bucket ran out: JSON google.rpc.Status and retry-after."""
    assert reply.status == 429
    assert reply.headers["retry-after"] == str(retry_after_s)
    assert reply.content_type == "application/json"
    assert reply.json()["code"] == GRPC_RESOURCE_EXHAUSTED


def test_a_customers_writes_beyond_their_limit_get_429_and_never_reach_the_service(
    strict_gateway: Gateway,
) -> None:
    assert place_orders(strict_gateway, "alice", WRITES_PER_CUSTOMER) == [503] * (
        WRITES_PER_CUSTOMER
    )
    attempts = connection_attempts(strict_gateway, "orders")
    assert attempts == attempts_for(strict_gateway, WRITES_PER_CUSTOMER)

    limited = call(strict_gateway, "POST", "/v1/orders", token=token_for("alice"), body=ORDER)

    assert_rate_limited(limited, STRICT_LIMITS.writes.retry_after_s)
    assert connection_attempts(strict_gateway, "orders") == attempts


def test_another_customer_keeps_their_whole_budget_when_one_is_limited(
    strict_gateway: Gateway,
) -> None:
    assert place_orders(strict_gateway, "alice", WRITES_PER_CUSTOMER + 1)[-1] == 429

    assert place_orders(strict_gateway, "bob", WRITES_PER_CUSTOMER) == [503] * (WRITES_PER_CUSTOMER)
    assert place_orders(strict_gateway, "bob", 1) == [429]


def test_a_client_cannot_choose_its_bucket_with_its_own_customer_header(
    strict_gateway: Gateway,
) -> None:
    """The bucket is the verified token's subject: a client's x-customer-id is removed before
    the token sets it, so naming another customer neither escapes nor spends their bucket."""
    place_orders(strict_gateway, "alice", WRITES_PER_CUSTOMER)

    as_bob = call(
        strict_gateway,
        "POST",
        "/v1/orders",
        token=token_for("alice"),
        body=ORDER,
        headers={"x-customer-id": "bob"},
    )

    assert as_bob.status == 429
    assert place_orders(strict_gateway, "bob", WRITES_PER_CUSTOMER) == [503] * (WRITES_PER_CUSTOMER)


def test_reads_keep_their_own_bucket_when_writes_are_exhausted(strict_gateway: Gateway) -> None:
    place_orders(strict_gateway, "alice", WRITES_PER_CUSTOMER + 1)

    assert call(strict_gateway, "GET", "/v1/orders", token=token_for("alice")).status == 503


def test_each_route_has_its_own_bucket(strict_gateway: Gateway) -> None:
    token = token_for("alice")
    place_orders(strict_gateway, "alice", WRITES_PER_CUSTOMER + 1)

    product = {"sku": "mug", "name": "Mug", "unitPriceMinor": 100, "currencyCode": "EUR"}
    assert call(strict_gateway, "POST", "/v1/products", token=token, body=product).status == 503


def test_grpc_beyond_a_customers_limit_is_resource_exhausted_for_them_only(
    strict_gateway: Gateway,
) -> None:
    burst = STRICT_LIMITS.grpc.per_customer.burst

    alice = list_orders(strict_gateway, "alice", burst + 1)
    bob = list_orders(strict_gateway, "bob", burst)

    assert alice == [grpc.StatusCode.UNAVAILABLE] * burst + [grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert bob == [grpc.StatusCode.UNAVAILABLE] * burst


def test_the_global_guard_trips_when_customers_together_exceed_it(
    guarded_gateway: Gateway,
) -> None:
    per_customer = GUARDED_LIMITS.writes.per_customer.burst
    guard = GUARDED_LIMITS.writes.global_guard.burst
    customers = [f"customer-{i}" for i in range(guard // per_customer + 1)]
    statuses = [s for c in customers for s in place_orders(guarded_gateway, c, per_customer)]

    assert statuses == [503] * guard + [429] * (len(statuses) - guard)
    fresh = call(guarded_gateway, "POST", "/v1/orders", token=token_for("newcomer"), body=ORDER)
    assert_rate_limited(fresh, GUARDED_LIMITS.writes.retry_after_s)
    assert connection_attempts(guarded_gateway, "orders") == attempts_for(guarded_gateway, guard)
    # Reads have a guard of their own.
    assert call(guarded_gateway, "GET", "/v1/orders", token=token_for("newcomer")).status == 503


def test_the_global_guard_trips_for_grpc_too(guarded_gateway: Gateway) -> None:
    guard = GUARDED_LIMITS.grpc.global_guard.burst

    codes = list_orders(guarded_gateway, "alice", 2) + list_orders(guarded_gateway, "bob", 2)

    assert codes == [grpc.StatusCode.UNAVAILABLE] * guard + [grpc.StatusCode.RESOURCE_EXHAUSTED]


def test_limits_from_the_environment_reach_envoy(topology: Topology) -> None:
    """STRICT_LIMITS allow alice two orders; the environment raises her bucket (a bucket that
    refills only ever lets more through, so this holds however slow the machine)."""
    settings = settings_from_environment(
        {"CONCORD_GATEWAY_CUSTOMER_WRITES_PER_S": "50"}, base=STRICT_LIMITS
    )
    with running_gateway(topology, settings) as gateway:
        assert place_orders(gateway, "alice", WRITES_PER_CUSTOMER + 3) == [503] * (
            WRITES_PER_CUSTOMER + 3
        )
