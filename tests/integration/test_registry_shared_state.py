"""The registry's shared state on a real nats-server: two replicas' stores (each its own NATS
connection and view) change one key-value bucket. Writes through either reach both views,
concurrent revision-checked updates lose nothing, a dead instance is dropped and forgotten
exactly once, the bucket's TTL forgets an instance nobody writes, and contract versions are
numbered once across replicas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

import pytest

from registry.instances import Health, InstanceTable, ProbeOutcome
from registry.shared_contracts import JetStreamContractVersions
from registry.shared_instances import JetStreamInstances
from runtime.bus import Bus
from runtime.errors import AlreadyExistsError, ConcurrencyConflictError, NotFoundError
from tests.support.polling import eventually
from tools.runner.nats import NatsCluster, NatsServer

SERVICE = "shop.inventory.v1.InventoryService"
WAIT_S = 20.0


class Clock:
    """Shared by both replicas, as wall clocks are; moved by the test."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Replica:
    bus: Bus
    instances: JetStreamInstances
    task: asyncio.Task[None]

    @property
    def table(self) -> InstanceTable:
        return self.instances.table


async def open_replica(
    url: str,
    name: str,
    clock: Clock,
    lease_ttl_s: float = 10,
    forget_after_s: float = 30,
    bucket_replicas: int = 1,
) -> Replica:
    bus = Bus(url.split(","), name, 2.0)
    await bus.connect()
    table = InstanceTable(
        lease_ttl_s=lease_ttl_s, failures_to_evict=2, forget_after_s=forget_after_s, clock=clock
    )
    instances = JetStreamInstances(bus, table, replicas=bucket_replicas, clock=clock)
    await instances.open()
    return Replica(bus, instances, asyncio.create_task(instances.run()))


async def close_replica(replica: Replica) -> None:
    replica.task.cancel()
    await asyncio.gather(replica.task, return_exceptions=True)
    await replica.bus.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def replicas(nats_server: NatsServer, clock: Clock) -> AsyncIterator[tuple[Replica, Replica]]:
    a = await open_replica(nats_server.url, "registry-a", clock)
    b = await open_replica(nats_server.url, "registry-b", clock)
    try:
        yield a, b
    finally:
        await close_replica(a)
        await close_replica(b)


async def seen_by(replica: Replica, instance_id: str) -> bool:
    return any(i.instance_id == instance_id for i in replica.table.all())


async def listed(replica: Replica) -> list[str]:
    return [i.instance_id for i in replica.table.all()]


async def failed_probes(replica: Replica, instance_id: str) -> int:
    return replica.table.get(instance_id).failed_probes


async def heartbeat_refused(replica: Replica, instance_id: str) -> bool:
    try:
        await replica.instances.heartbeat(instance_id)
    except NotFoundError:
        return True
    return False


async def test_a_registration_through_one_replica_is_live_on_the_other(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    instance = await a.instances.register(SERVICE, "127.0.0.1:7001", "v1", {"zone": "a"})
    await eventually(lambda: seen_by(b, instance.instance_id), bool, WAIT_S, "b sees it")
    assert b.table.live(SERVICE) == []  # not probed yet
    await b.instances.record_probe(instance.instance_id, ProbeOutcome.SERVING)
    live = await eventually(
        lambda: asyncio.sleep(0, a.table.live(SERVICE)), bool, WAIT_S, "live on a"
    )
    assert [(i.address, i.metadata) for i in live] == [("127.0.0.1:7001", {"zone": "a"})]
    renewed = await b.instances.heartbeat(instance.instance_id)
    assert renewed.lease_expires_at == instance.lease_expires_at  # same clock, same TTL


async def test_a_new_registration_replaces_the_old_entry_everywhere(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    old = await a.instances.register(SERVICE, "127.0.0.1:7002", "v1", {})
    await eventually(lambda: seen_by(b, old.instance_id), bool, WAIT_S, "b sees the old one")
    new = await b.instances.register(SERVICE, "127.0.0.1:7002", "v2", {})
    for replica in (a, b):
        ids = await eventually(
            partial(listed, replica),
            lambda ids: ids == [new.instance_id],
            WAIT_S,
            "only the new registration listed",
        )
        assert ids == [new.instance_id]
    await eventually(
        lambda: heartbeat_refused(a, old.instance_id), bool, WAIT_S, "old entry deleted"
    )


async def test_concurrent_updates_from_two_replicas_lose_none(
    nats_server: NatsServer, clock: Clock
) -> None:
    a = await open_replica(nats_server.url, "registry-a", clock)
    b = await open_replica(nats_server.url, "registry-b", clock)
    try:
        a.table.failures_to_evict = b.table.failures_to_evict = 1000
        instance = await a.instances.register(SERVICE, "127.0.0.1:7003", "v1", {})
        rounds = 15
        await asyncio.gather(
            *(
                r.instances.record_probe(instance.instance_id, ProbeOutcome.FAILED)
                for _ in range(rounds)
                for r in (a, b)
            ),
            *(r.instances.heartbeat(instance.instance_id) for _ in range(rounds) for r in (a, b)),
        )
        for replica in (a, b):
            counted = await eventually(
                partial(failed_probes, replica, instance.instance_id),
                lambda n: n == 2 * rounds,
                WAIT_S,
                "every failed probe counted once",
            )
            assert counted == 2 * rounds
    finally:
        await close_replica(a)
        await close_replica(b)


async def test_a_dead_instance_is_dropped_and_forgotten_exactly_once(
    replicas: tuple[Replica, Replica], clock: Clock
) -> None:
    a, b = replicas
    instance = await a.instances.register(SERVICE, "127.0.0.1:7004", "v1", {})
    await a.instances.record_probe(instance.instance_id, ProbeOutcome.SERVING)
    await eventually(
        lambda: asyncio.sleep(0, b.table.live(SERVICE)), bool, WAIT_S, "live on b first"
    )
    clock.now += 11  # the lease lapses: no heartbeat
    swept = await asyncio.gather(a.instances.expire_leases(), b.instances.expire_leases())
    changes = [change for changed, _ in swept for change in changed]
    assert [(c.before, c.after, c.reason) for c in changes] == [
        (Health.SERVING, Health.NOT_SERVING, "lease lapsed")
    ]
    clock.now += 31  # lapsed for forget_after_s
    swept = await asyncio.gather(a.instances.expire_leases(), b.instances.expire_leases())
    assert [i.instance_id for _, gone in swept for i in gone] == [instance.instance_id]
    for replica in (a, b):
        await eventually(
            partial(listed, replica),
            lambda left: left == [],
            WAIT_S,
            "gone",
        )
    with pytest.raises(NotFoundError):
        await b.instances.heartbeat(instance.instance_id)


async def test_the_bucket_ttl_forgets_an_instance_nobody_writes(
    nats_server: NatsServer,
) -> None:
    """No replica sweeps here (their clocks stand still): the key-value TTL alone removes it,
    and its purge reaches both views."""
    frozen = Clock()
    a = await open_replica(nats_server.url, "registry-a", frozen, lease_ttl_s=1, forget_after_s=1)
    b = await open_replica(nats_server.url, "registry-b", frozen, lease_ttl_s=1, forget_after_s=1)
    try:
        instance = await a.instances.register(SERVICE, "127.0.0.1:7005", "v1", {})
        await eventually(lambda: seen_by(b, instance.instance_id), bool, WAIT_S, "b sees it")
        for replica in (a, b):
            await eventually(
                partial(seen_by, replica, instance.instance_id),
                lambda seen: not seen,
                WAIT_S,
                "expired by the bucket's TTL",
            )
        with pytest.raises(NotFoundError):
            await a.instances.heartbeat(instance.instance_id)
    finally:
        await close_replica(a)
        await close_replica(b)


async def test_a_restarted_replica_loads_the_whole_table(
    replicas: tuple[Replica, Replica], nats_server: NatsServer, clock: Clock
) -> None:
    a, _ = replicas
    registered = [
        await a.instances.register(SERVICE, f"127.0.0.1:{7100 + n}", "v1", {}) for n in range(5)
    ]
    fresh = await open_replica(nats_server.url, "registry-c", clock)
    try:
        assert {i.instance_id for i in fresh.table.all()} == {i.instance_id for i in registered}
    finally:
        await close_replica(fresh)


async def test_contract_versions_are_numbered_once_across_replicas(
    nats_server: NatsServer,
) -> None:
    buses = [Bus([nats_server.url], f"contracts-{n}", 2.0) for n in range(2)]
    for bus in buses:
        await bus.connect()
    a, b = (JetStreamContractVersions(bus, replicas=1) for bus in buses)
    await a.open()
    await b.open()
    try:
        first = await a.append("v1", 1.0, "aa", b"\x01", {"a.proto": "syntax"})
        with pytest.raises(ConcurrencyConflictError):  # b has not seen v1: its number is taken
            await b.append("other", 2.0, "bb", b"\x02", {})
        with pytest.raises(AlreadyExistsError):
            await b.append("v1", 2.0, "bb", b"\x02", {})
        tasks = [asyncio.create_task(c.run()) for c in (a, b)]
        try:
            await eventually(b.latest, lambda c: c is not None, WAIT_S, "b sees v1")
            second = await b.append("other", 2.0, "bb", b"\x02", {})
            assert (first.version, second.version) == (1, 2)
            got = await eventually(lambda: a.get(2), lambda c: c is not None, WAIT_S, "a sees v2")
            assert got is not None and got.descriptor_set == b"\x02"
            assert [c.label for c in await a.summaries()] == ["other", "v1"]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for bus in buses:
            await bus.close()


async def register_through(replica: Replica, address: str) -> str | None:
    """Registers, or None while the cluster is still electing (the platform retries too)."""
    try:
        return (await replica.instances.register(SERVICE, address, "v1", {})).instance_id
    except Exception:
        return None


async def test_views_follow_when_the_nats_node_a_replica_uses_dies(
    nats_cluster: NatsCluster, clock: Clock
) -> None:
    nodes = len(nats_cluster.nodes)
    a = await open_replica(nats_cluster.urls, "registry-a", clock, bucket_replicas=nodes)
    b = await open_replica(nats_cluster.urls, "registry-b", clock, bucket_replicas=nodes)
    try:
        # A bucket just created at three replicas may still be electing its leader.
        first = await eventually(
            partial(register_through, a, "127.0.0.1:7201"), bool, WAIT_S, "a registers"
        )
        assert first is not None
        await eventually(partial(seen_by, b, first), bool, WAIT_S, "b sees it")
        victim = next(n for n in nats_cluster.nodes if n.url == a.bus.server)
        victim.kill()
        after = await eventually(
            partial(register_through, b, "127.0.0.1:7202"), bool, WAIT_S, "b registers"
        )
        assert after is not None
        await eventually(partial(seen_by, a, after), bool, WAIT_S, "a sees it after a reconnect")
        renewed = await eventually(
            partial(heartbeat_refused, a, first),
            lambda refused: not refused,
            WAIT_S,
            "a writes again",
        )
        assert renewed is False
    finally:
        await close_replica(a)
        await close_replica(b)
