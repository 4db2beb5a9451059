"""Discovery against a real registry process: leases, health probes, the platform's
registration and resolver, Watch, and a registry restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from concord.registry.v1 import discovery_service_pb2, discovery_service_pb2_grpc, registry_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from runtime.clients import CallPolicy, ServiceClient
from runtime.discovery import RegistryResolver
from runtime.errors import DependencyUnavailableError
from runtime.registration import Registration
from runtime.registry_client import RegistryClientSettings
from tests.support.discovery_client import health_server, instances, live_addresses
from tests.support.polling import eventually
from tests.support.registry_process import ConcordProcess, registry_process

SERVICE = "shop.inventory.v1.InventoryService"
PROBE_INTERVAL_S = 1.0
SETTLE_S = 15.0
"""Bound on waits that need a probe or a heartbeat to happen, far above the fast settings."""
CALL_POLICY = CallPolicy(deadline_s=2.0, breaker_fail_max=5, breaker_reset_timeout_s=5.0)


def client_settings(registry: ConcordProcess) -> RegistryClientSettings:
    return RegistryClientSettings(
        registry_address=registry.address,
        heartbeat_interval_s=0.5,
        registry_call_timeout_s=2.0,
        registration_retry_max_s=0.5,
        resolve_cache_ttl_s=0.2,
    )


@pytest.fixture
async def stub(
    registry: ConcordProcess,
) -> AsyncIterator[discovery_service_pb2_grpc.DiscoveryServiceStub]:
    async with grpc.aio.insecure_channel(registry.address) as channel:
        yield discovery_service_pb2_grpc.DiscoveryServiceStub(channel)


@asynccontextmanager
async def registered(registry: ConcordProcess, address: str) -> AsyncIterator[Registration]:
    """A registration of `address` for SERVICE that the registry lists as live; stopped after."""
    registration = Registration(client_settings(registry), address, "test", [SERVICE])
    registration.start()
    try:
        await eventually(
            lambda: live_addresses(registry.address, SERVICE),
            lambda live: live == {address},
            SETTLE_S,
            "instance live",
        )
        yield registration
    finally:
        await registration.stop()


async def test_registered_instances_become_live_and_deregister_on_stop(
    registry: ConcordProcess,
) -> None:
    async with health_server(SERVICE) as one, health_server(SERVICE) as two:
        registrations = [
            Registration(client_settings(registry), server.address, "test", [SERVICE])
            for server in (one, two)
        ]
        for registration in registrations:
            registration.start()
        try:
            await eventually(
                lambda: live_addresses(registry.address, SERVICE),
                lambda live: live == {one.address, two.address},
                SETTLE_S,
                "both instances live",
            )
        finally:
            for registration in registrations:
                await registration.stop()
        listed = await instances(registry.address)
    assert [i for i in listed if i.service_name == SERVICE] == []


async def test_not_serving_instance_is_dropped_though_alive_and_comes_back(
    registry: ConcordProcess,
) -> None:
    async with health_server(SERVICE) as server, registered(registry, server.address):
        await server.set(SERVICE, serving=False)
        await eventually(
            lambda: live_addresses(registry.address, SERVICE),
            lambda live: live == set(),
            SETTLE_S,
            "NOT_SERVING instance dropped",
        )
        listed = await instances(registry.address)
        assert [i.health for i in listed] == [registry_pb2.HEALTH_STATUS_NOT_SERVING]
        await server.set(SERVICE, serving=True)
        await eventually(
            lambda: live_addresses(registry.address, SERVICE),
            lambda live: live == {server.address},
            SETTLE_S,
            "instance back once SERVING",
        )


async def test_stopped_instance_is_dropped_and_returns_on_restart(registry: ConcordProcess) -> None:
    async with health_server(SERVICE) as server:
        port = int(server.address.rsplit(":", 1)[1])
        async with registered(registry, server.address):
            await server.server.stop(0)
            await eventually(
                lambda: live_addresses(registry.address, SERVICE),
                lambda live: live == set(),
                SETTLE_S,
                "unreachable instance dropped",
            )
            async with health_server(SERVICE, port=port):
                await eventually(
                    lambda: live_addresses(registry.address, SERVICE),
                    lambda live: live == {server.address},
                    SETTLE_S,
                    "restarted instance back",
                )


async def test_instances_register_again_after_a_registry_restart(
    registry: ConcordProcess,
) -> None:
    async with (
        health_server(SERVICE) as server,
        registered(registry, server.address) as registration,
    ):
        first_id = registration.instance_ids[SERVICE]
        registry.kill()
        await asyncio.to_thread(registry.start)
        await eventually(
            lambda: live_addresses(registry.address, SERVICE),
            lambda live: live == {server.address},
            SETTLE_S,
            "instance registered again",
        )
        assert registration.instance_ids[SERVICE] != first_id


async def test_registration_waits_in_the_background_for_a_registry_that_is_down(
    tmp_path: Path,
) -> None:
    registry = registry_process(tmp_path / "data", tmp_path / "logs")
    async with health_server(SERVICE) as server:
        registration = Registration(client_settings(registry), server.address, "test", [SERVICE])
        registration.start()  # returns at once although nothing listens yet
        try:
            await asyncio.to_thread(registry.start)
            await eventually(
                lambda: live_addresses(registry.address, SERVICE),
                lambda live: live == {server.address},
                SETTLE_S,
                "instance registered once the registry is up",
            )
        finally:
            await registration.stop()
            registry.stop()


async def test_resolver_round_robins_feeds_service_clients_and_says_when_none_is_live(
    registry: ConcordProcess,
) -> None:
    resolver = RegistryResolver(client_settings(registry))
    async with health_server(SERVICE) as one, health_server(SERVICE) as two:
        registrations = [
            Registration(client_settings(registry), s.address, "test", [SERVICE])
            for s in (one, two)
        ]
        for registration in registrations:
            registration.start()
        try:
            await eventually(
                lambda: live_addresses(registry.address, SERVICE),
                lambda live: len(live) == 2,
                SETTLE_S,
                "both live",
            )
            picked = [await resolver.address(SERVICE) for _ in range(4)]
            assert set(picked) == {one.address, two.address}
            assert picked[0] != picked[1] and picked[0] == picked[2]
            with pytest.raises(DependencyUnavailableError, match="no live instance"):
                await resolver.address("shop.payments.v1.PaymentsService")
            client = ServiceClient(
                "inventory", resolver.for_service(SERVICE), CALL_POLICY, health_pb2_grpc.HealthStub
            )
            try:
                reply = await client.call(
                    lambda health: health.Check, health_pb2.HealthCheckRequest(service=SERVICE)
                )
            finally:
                await client.close()
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        finally:
            for registration in registrations:
                await registration.stop()
            await resolver.close()


async def test_watch_streams_the_live_set_after_each_change(
    registry: ConcordProcess, stub: discovery_service_pb2_grpc.DiscoveryServiceStub
) -> None:
    call = stub.Watch(discovery_service_pb2.WatchRequest(service_name=SERVICE))
    first = await asyncio.wait_for(call.read(), SETTLE_S)
    assert list(first.instances) == []
    async with health_server(SERVICE) as server:
        registration = Registration(client_settings(registry), server.address, "test", [SERVICE])
        registration.start()
        try:
            update = await asyncio.wait_for(call.read(), SETTLE_S)
            assert [i.address for i in update.instances] == [server.address]
        finally:
            await registration.stop()
            call.cancel()


async def test_heartbeat_for_an_unknown_instance_is_not_found(
    stub: discovery_service_pb2_grpc.DiscoveryServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Heartbeat(discovery_service_pb2.HeartbeatRequest(instance_id="ins_gone"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_bad_registration_gets_every_field_violation(
    stub: discovery_service_pb2_grpc.DiscoveryServiceStub,
) -> None:
    call = stub.Register(discovery_service_pb2.RegisterRequest(service_name="", address="nowhere"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = await rpc_status.aio.from_call(call)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert {v.field for v in bad_request.field_violations} == {"service_name", "address"}
