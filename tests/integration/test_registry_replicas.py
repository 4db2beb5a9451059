"""Two real registry replicas sharing their state in JetStream key-value on a real three-node
NATS cluster, the shop's services registered with both (CONCORD_REGISTRY_ADDRESS lists them),
and a real Envoy whose ADS cluster lists both. kill -9 one replica while orders are placed
back to back (orders prices through inventory, resolved through the registry) and calls go
through Envoy: no order and no call fails, the survivor keeps every instance live past a whole
lease, and the killed replica, restarted, lists the whole table before any heartbeat could
have reached it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from concord.registry.v1 import discovery_service_pb2, discovery_service_pb2_grpc
from shop.inventory.v1 import inventory_service_pb2, inventory_service_pb2_grpc

from runtime import catalogue
from tests.support.envoy_ads import EnvoyAds
from tests.support.polling import eventually
from tests.support.processes import ServiceRunner, live_addresses
from tests.support.registry_process import FAST_REGISTRY_SETTINGS
from tests.support.shop import shop_client
from tools.runner.nats import NatsCluster
from tools.runner.ports import free_port
from tools.runner.stack import Stack
from tools.runner.topology import Topology

SETTLE_S = 60.0
LEASE_TTL_S = float(FAST_REGISTRY_SETTINGS["CONCORD_REGISTRY_LEASE_TTL_S"])
REGISTERED = [
    p.registered_service for p in catalogue.shop_services() if p.registered_service is not None
]
INVENTORY = "shop.inventory.v1.InventoryService"


@pytest.fixture
def replicated(stack: Stack, nats_cluster: NatsCluster) -> Iterator[tuple[ServiceRunner, int]]:
    """A runner whose registry is two replicas on shared state: the topology's port (started
    as the services' dependency) and a second port; every service knows both."""
    second = free_port()
    both = f"127.0.0.1:{stack.topology.registry_port},127.0.0.1:{second}"
    nats = {
        "CONCORD_NATS_URL": nats_cluster.urls,
        "CONCORD_NATS_REPLICAS": str(len(nats_cluster.nodes)),
    }
    runner = ServiceRunner(stack, service_env={**nats, "CONCORD_REGISTRY_ADDRESS": both})
    runner.registry_env.update({**nats, "CONCORD_REGISTRY_STATE": "jetstream"})
    try:
        yield runner, second
    finally:
        runner.stop_all()


def table_of(address: str) -> list[tuple[str, str, str, int]]:
    """ListInstances as (service, address, instance id, health), sorted."""
    with grpc.insecure_channel(address) as channel:
        reply = discovery_service_pb2_grpc.DiscoveryServiceStub(channel).ListInstances(
            discovery_service_pb2.ListInstancesRequest(), timeout=5
        )
    return sorted((i.service_name, i.address, i.instance_id, i.health) for i in reply.instances)


def all_live(address: str) -> bool:
    return all(live_addresses(address, service) for service in REGISTERED)


async def keep_calling(envoy: EnvoyAds, done: asyncio.Event) -> tuple[int, list[str]]:
    calls, failures = 0, []
    async with grpc.aio.insecure_channel(envoy.address) as channel:
        stub = inventory_service_pb2_grpc.InventoryServiceStub(channel)
        while not done.is_set():
            try:
                await stub.ListProducts(
                    inventory_service_pb2.ListProductsRequest(page_size=1), timeout=5
                )
                calls += 1
            except grpc.aio.AioRpcError as error:
                failures.append(f"envoy: {error.code().name}: {error.details()}")
            await asyncio.sleep(0.05)
    return calls, failures


async def test_killing_a_registry_replica_under_load_changes_nothing_for_clients(
    replicated: tuple[ServiceRunner, int], topology: Topology, tmp_path: Path
) -> None:
    services, second_port = replicated
    services.start_shop()
    first = services.running["registry"]
    second = services.start_instance("registry", second_port)
    await eventually(
        lambda: asyncio.to_thread(all_live, second.address),
        bool,
        SETTLE_S,
        "every service live on the second replica too",
    )
    envoy = EnvoyAds(
        topology.registry_port,
        "inventory",
        tmp_path / "envoy",
        more_registry_ports=(second_port,),
    )
    await asyncio.to_thread(envoy.start)
    try:
        inventory = services.running["inventory"].address
        await eventually(
            lambda: asyncio.to_thread(envoy.hosts, "inventory"),
            lambda hosts: hosts == {inventory},
            SETTLE_S,
            "inventory in Envoy",
        )
        async with shop_client(topology) as shop:
            product = await shop.product(stock=1_000_000)
            await shop.account("rita", 10**12)
            await shop.place("rita", [(product, 1)])

            done = asyncio.Event()
            placing = asyncio.create_task(shop.place_until("rita", product, done))
            calling = asyncio.create_task(keep_calling(envoy, done))
            try:
                first.kill()
                # A whole lease and more on the survivor alone: only heartbeats that failed over
                # keep the instances live (nothing re-registers: the table is shared).
                await asyncio.sleep(LEASE_TTL_S + 2)
                assert await asyncio.to_thread(all_live, second.address)
                assert await asyncio.to_thread(envoy.hosts, "inventory") == {inventory}

                restarted = await asyncio.to_thread(services.start, "registry")
                # At once, before any heartbeat could reach it: the table came from the bucket.
                on_restarted = await asyncio.to_thread(table_of, restarted.address)
                on_survivor = await asyncio.to_thread(table_of, second.address)
                assert on_restarted == on_survivor
                assert set(REGISTERED) <= {row[0] for row in on_restarted}
                await asyncio.sleep(2)  # traffic goes on with both replicas again
            finally:
                done.set()
                placed, order_failures = await placing
                calls, call_failures = await calling
    finally:
        envoy.stop()
    assert order_failures + call_failures == []
    assert placed > 20
    assert calls > 20
