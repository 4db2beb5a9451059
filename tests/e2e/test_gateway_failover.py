"""Two inventory instances behind the real gateway, which learns them from the registry over
ADS: both get REST traffic; kill -9 one, and within three probe intervals Envoy stops listing it
while REST calls through the gateway keep succeeding; restart it and it gets traffic again.

Both instances use inventory's one database file (the same data folder): SQLite in WAL mode
with a busy timeout lets two processes on one host share it, so a product created through one
instance reads the same through the other, as replicas of one service must look to a client.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.gateway import Reply, admin_token, call
from tests.support.polling import until
from tests.support.processes import ServiceRunner, live_addresses
from tools.runner.gateway import Gateway
from tools.runner.nats import NatsServer
from tools.runner.ports import free_port
from tools.runner.stack import Stack

CLUSTER = "inventory"
PROBE_INTERVAL_S = 2.0
SPREAD_READS_MAX = 40
"""Bound on the reads sent while waiting for every endpoint to have served one."""


@pytest.fixture
def services(stack: Stack, nats_server: NatsServer) -> Iterator[ServiceRunner]:
    """The shared fixture with a registry probing every PROBE_INTERVAL_S, the unit of the
    eviction budget below."""
    runner = ServiceRunner(stack)
    runner.registry_env["CONCORD_REGISTRY_PROBE_INTERVAL_S"] = str(PROBE_INTERVAL_S)
    try:
        yield runner
    finally:
        runner.stop_all()


def read_product(gateway: Gateway, token: str, product_id: str) -> Reply:
    reply = call(gateway, "GET", f"/v1/products/{product_id}", token=token)
    assert reply.status == 200, reply.body
    assert reply.json()["product"]["productId"] == product_id
    return reply


def reads_reach(gateway: Gateway, token: str, product_id: str, addresses: set[str]) -> None:
    """Reads through the gateway until each of `addresses` has served more than before; every
    read must succeed on the way."""
    before = gateway.endpoint_requests(CLUSTER)
    for _ in range(SPREAD_READS_MAX):
        read_product(gateway, token, product_id)
        now = gateway.endpoint_requests(CLUSTER)
        if all(now.get(a, 0) > before.get(a, 0) for a in addresses):
            return
    raise AssertionError(f"not every endpoint of {addresses} served a read: {now}")


def create_product(gateway: Gateway, token: str, sku: str) -> str:
    product = {
        "sku": sku,
        "name": "Mug",
        "unitPriceMinor": 1250,
        "currencyCode": "EUR",
        "initialStock": 10,
    }
    reply = call(gateway, "POST", "/v1/products", token=token, body=product)
    assert reply.status == 200, reply.body
    return str(reply.json()["product"]["productId"])


def test_killed_instance_leaves_the_gateway_and_returns_after_restart(
    services: ServiceRunner, gateway: Gateway
) -> None:
    first = services.start("inventory")
    second = services.start_instance("inventory", free_port())
    both = {first.address, second.address}
    assert gateway.endpoints(CLUSTER) == both
    token = admin_token()  # creating products is the shop's job
    product_id = create_product(gateway, token, "MUG-1")
    reads_reach(gateway, token, product_id, both)

    first.kill()
    until(  # the registry evicts after probe_failures_to_evict (2) failed probes
        lambda: gateway.endpoints(CLUSTER),
        lambda hosts: hosts == {second.address},
        3 * PROBE_INTERVAL_S,
        "killed instance dropped from Envoy",
    )
    for _ in range(10):
        read_product(gateway, token, product_id)
    assert create_product(gateway, token, "MUG-2")

    restarted = services.start("inventory")
    assert gateway.endpoints(CLUSTER) == both
    reads_reach(gateway, token, product_id, {restarted.address})


def test_gateway_keeps_its_endpoints_while_the_registry_restarts(
    services: ServiceRunner, gateway: Gateway
) -> None:
    """kill -9 the registry: Envoy keeps its last endpoints and REST keeps working; the restarted
    registry withholds endpoints for its warm-up while instances register again on their next
    heartbeat, so Envoy never sees an empty cluster."""
    services.registry_env["CONCORD_REGISTRY_XDS_WARMUP_S"] = "3"
    inventory = services.start("inventory")
    token = admin_token()
    product_id = create_product(gateway, token, "MUG-R")

    services.running["registry"].kill()
    for _ in range(10):
        read_product(gateway, token, product_id)
    assert gateway.endpoints(CLUSTER) == {inventory.address}

    services.start("registry")
    until(  # the instance's next heartbeat is NOT_FOUND, so it registers again
        lambda: live_addresses(services.registry_address, "shop.inventory.v1.InventoryService"),
        lambda live: live == {inventory.address},
        10 * PROBE_INTERVAL_S,
        "inventory registered again with the restarted registry",
    )
    for _ in range(10):
        read_product(gateway, token, product_id)
        assert gateway.endpoints(CLUSTER) == {inventory.address}
