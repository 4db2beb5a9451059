"""Fixtures for tests through the gateway: Envoy on free ports, with or without services.

`gateway` is the real wiring: Envoy learns its endpoints from the registry, and every service
the test starts counts as started only once Envoy lists it. `lone_gateway` and
`strict_gateway` pin the route clusters to the topology's ports (tests/support/gateway.py),
because what they test is Envoy's own answer when the upstream refuses or never answers.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from runtime.server import SERVER_OPTIONS
from tests.support.gateway import running_gateway
from tests.support.processes import REGISTRY, RunningService, ServiceRunner
from tools.runner.gateway import Gateway, GatewaySettings, RouteLimit, RouteLimits
from tools.runner.process import ManagedProcess
from tools.runner.topology import Topology


@pytest.fixture(scope="module")
def lone_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Envoy with nothing behind it: every request it lets through finds its upstream down.

    Shared by a module's tests, which is safe because the default rate limits are far above
    what they send.
    """
    topology = Topology.on_free_ports(Path(tmp_path_factory.mktemp("lone-gateway")))
    with running_gateway(topology) as gateway:
        yield gateway


NEVER_REFILLED_S = 3600
"""A bucket's fill interval in the tests: it never refills during a test, so the request that
crosses a limit is known whatever the machine's speed."""


def never_refilled(per_customer: int, global_guard: int) -> RouteLimits:
    return RouteLimits(
        per_customer=RouteLimit(burst=per_customer, fill_interval_s=NEVER_REFILLED_S),
        global_guard=RouteLimit(burst=global_guard, fill_interval_s=NEVER_REFILLED_S),
    )


# Small buckets per customer; the global guards far above what a test sends.
STRICT_LIMITS = GatewaySettings(
    reads=never_refilled(per_customer=4, global_guard=1000),
    writes=never_refilled(per_customer=2, global_guard=1000),
    grpc=never_refilled(per_customer=2, global_guard=1000),
)


@pytest.fixture
def strict_gateway(topology: Topology) -> Iterator[Gateway]:
    """Envoy with STRICT_LIMITS for the test's topology: services started through the
    `services` fixture are behind it."""
    with running_gateway(topology, STRICT_LIMITS) as gateway:
        yield gateway


ENDPOINT_TIMEOUT_S = 30.0
"""Bound on the wait for Envoy to list an instance the registry already lists as live."""


@pytest.fixture
def gateway(services: ServiceRunner, topology: Topology) -> Iterator[Gateway]:
    """Envoy with the default settings for the test's topology, fed by the registry, in front
    of the services the test starts (`services.start("inventory")`)."""
    services.start(REGISTRY)
    with running_gateway(topology, from_registry=True) as gateway:
        services.on_live.append(lambda name, service: wait_for_endpoint(gateway, name, service))
        yield gateway


def wait_for_endpoint(gateway: Gateway, cluster: str, service: RunningService) -> None:
    """Returns once Envoy routes `cluster` to `service`, so the test's next call can reach it."""
    assert gateway.process is not None
    envoy: ManagedProcess = gateway.process
    envoy.wait_until(lambda: service.address in gateway.endpoints(cluster), ENDPOINT_TIMEOUT_S)


@pytest.fixture(scope="module")
def stub_orders_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Envoy in front of a stub orders service that answers ListOrders with no orders and
    GetOrder with NOT_FOUND: a real gRPC upstream for what the gateway does with replies
    (HEAD, the access log) without starting the shop."""
    import grpc
    from shop.orders.v1 import orders_service_pb2, orders_service_pb2_grpc

    class StubOrders(orders_service_pb2_grpc.OrdersServiceServicer):
        def ListOrders(
            self, request: orders_service_pb2.ListOrdersRequest, context: grpc.ServicerContext
        ) -> orders_service_pb2.ListOrdersResponse:
            return orders_service_pb2.ListOrdersResponse()

        def GetOrder(
            self, request: orders_service_pb2.GetOrderRequest, context: grpc.ServicerContext
        ) -> orders_service_pb2.GetOrderResponse:
            context.abort(grpc.StatusCode.NOT_FOUND, f"order {request.order_id} not found")
            raise AssertionError("abort raises")

    topology = Topology.on_free_ports(Path(tmp_path_factory.mktemp("stub-orders-gateway")))
    server = grpc.server(ThreadPoolExecutor(max_workers=2), options=SERVER_OPTIONS)
    orders_service_pb2_grpc.add_OrdersServiceServicer_to_server(StubOrders(), server)
    server.add_insecure_port(topology.address("orders"))
    server.start()
    try:
        with running_gateway(topology) as gateway:
            yield gateway
    finally:
        server.stop(grace=None)


@pytest.fixture
def silent_upstream() -> Iterator[socket.socket]:
    """A listener that accepts connections and never answers: a hung service."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener
