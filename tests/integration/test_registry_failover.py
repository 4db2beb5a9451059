"""Two real inventory processes behind a real Envoy fed by the registry over ADS: kill -9 one,
and within three probe intervals both Resolve and Envoy's endpoints lose it while calls through
Envoy keep succeeding; restart it and it comes back everywhere. And kill -9 the registry itself
while orders keeps pricing through inventory: no order fails while it is away or warming up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from shop.inventory.v1 import inventory_service_pb2, inventory_service_pb2_grpc

from tests.support.discovery_client import live_addresses
from tests.support.envoy_ads import EnvoyAds
from tests.support.polling import eventually
from tests.support.processes import ServiceRunner
from tests.support.processes import live_addresses as live_now
from tests.support.registry_process import ConcordProcess, registry_process, service_process
from tests.support.shop import shop_client
from tools.runner.nats import NatsServer
from tools.runner.topology import Topology

SERVICE = "shop.inventory.v1.InventoryService"
CLUSTER = "inventory"
PROBE_INTERVAL_S = 2.0
SETTLE_S = 30.0
"""Bound on waits for processes to start and register, far above the fast settings."""
RESOLVE_WARMUP_S = 6.0
SLOW_REREGISTRATION = {
    "CONCORD_HEARTBEAT_INTERVAL_S": "2.0",
    "CONCORD_REGISTRATION_RETRY_MAX_S": "3.0",
}
"""Inventory finds the restarted registry up to 3 s late, as with the default settings (2 s
heartbeats, back-off up to 5 s), not at once as with the fast test settings: the window in
which the registry would otherwise say inventory has no live instance."""
REGISTRY_DOWN_S = 2.0
AFTER_LIVE_S = 2.0
"""How long orders keep being placed after inventory is live again in the restarted registry."""


@pytest.fixture
def probed_registry(tmp_path: Path) -> Iterator[ConcordProcess]:
    process = registry_process(
        tmp_path / "registry-data",
        tmp_path / "logs",
        CONCORD_REGISTRY_PROBE_INTERVAL_S=str(PROBE_INTERVAL_S),
    ).start()
    try:
        yield process
    finally:
        process.stop()


async def call_through(envoy: EnvoyAds) -> None:
    async with grpc.aio.insecure_channel(envoy.address) as channel:
        stub = inventory_service_pb2_grpc.InventoryServiceStub(channel)
        await stub.ListProducts(inventory_service_pb2.ListProductsRequest(page_size=1), timeout=5)


async def envoy_hosts(envoy: EnvoyAds) -> set[str]:
    return await asyncio.to_thread(envoy.hosts, CLUSTER)


async def test_killed_instance_leaves_resolve_and_envoy_and_returns_after_restart(
    tmp_path: Path, nats_server: NatsServer, probed_registry: ConcordProcess
) -> None:
    instances = [
        service_process(
            "inventory",
            tmp_path / f"inventory-{n}",
            tmp_path / "logs",
            probed_registry.address,
            nats_server.url,
            instance=f"-{n}",
        )
        for n in (1, 2)
    ]
    envoy = EnvoyAds(probed_registry.port, CLUSTER, tmp_path / "envoy")
    try:
        for instance in instances:
            await asyncio.to_thread(instance.start)
        await asyncio.to_thread(envoy.start)
        both = {i.address for i in instances}
        await eventually(
            lambda: live_addresses(probed_registry.address, SERVICE),
            lambda live: live == both,
            SETTLE_S,
            "both live in the registry",
        )
        await eventually(lambda: envoy_hosts(envoy), lambda h: h == both, SETTLE_S, "both in Envoy")
        await call_through(envoy)

        victim, survivor = instances
        victim.kill()
        budget_s = 3 * PROBE_INTERVAL_S
        killed_at = time.monotonic()
        await eventually(
            lambda: live_addresses(probed_registry.address, SERVICE),
            lambda live: live == {survivor.address},
            budget_s,
            "killed instance dropped from Resolve",
        )
        remaining_s = max(0.0, budget_s - (time.monotonic() - killed_at))
        await eventually(
            lambda: envoy_hosts(envoy),
            lambda h: h == {survivor.address},
            remaining_s,
            "killed instance dropped from Envoy",
        )
        for _ in range(5):
            await call_through(envoy)

        await asyncio.to_thread(victim.start)
        try:
            await eventually(
                lambda: live_addresses(probed_registry.address, SERVICE),
                lambda live: live == both,
                SETTLE_S,
                "restarted instance back in the registry",
            )
        except AssertionError as error:
            raise AssertionError(
                f"{error}\n--- restarted instance ---\n{victim.log_tail()}"
                f"\n--- registry ---\n{probed_registry.log_tail()}"
            ) from error
        await eventually(
            lambda: envoy_hosts(envoy), lambda h: h == both, SETTLE_S, "restarted back in Envoy"
        )
        await call_through(envoy)
    finally:
        envoy.stop()
        for instance in instances:
            instance.stop()


async def test_orders_keep_pricing_through_a_registry_restart(
    services: ServiceRunner, topology: Topology
) -> None:
    """The restarted registry knows nobody until instances register again; during its warm-up
    it says so (REGISTRY_WARMING_UP) instead of "none live", and orders' resolver keeps the
    inventory address it had, so its breaker never opens and no order fails."""
    services.registry_env["CONCORD_REGISTRY_RESOLVE_WARMUP_S"] = str(RESOLVE_WARMUP_S)
    services.start("inventory", env=SLOW_REREGISTRATION)
    for name in ("payments", "orders"):
        services.start(name)
    inventory = services.running["inventory"]
    async with shop_client(topology) as shop:
        product = await shop.product(stock=100_000)
        await shop.account("rita", 10**12)
        await shop.place("rita", [(product, 1)])

        done = asyncio.Event()
        placing = asyncio.create_task(shop.place_until("rita", product, done))
        try:
            services.running["registry"].kill()
            await asyncio.sleep(REGISTRY_DOWN_S)  # inventory's back-off grows meanwhile
            await asyncio.to_thread(services.start, "registry")
            await eventually(
                lambda: asyncio.to_thread(live_now, services.registry_address, SERVICE),
                lambda live: live == {inventory.address},
                SETTLE_S,
                "inventory registered again with the restarted registry",
            )
            await asyncio.sleep(AFTER_LIVE_S)
        finally:
            done.set()
            placed, failures = await placing
    assert failures == []
    assert placed > 20
