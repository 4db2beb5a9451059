"""The bus and a durable consumer on a three-node JetStream cluster: streams at three replicas,
duplicates dropped, and messages still published and consumed, each applied once, while leaders
move and when the node the client is connected to dies."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import nats
import pytest
from shop.inventory.v1 import commands_pb2, inventory_pb2

from runtime import outbox
from runtime.bus import Bus
from runtime.consumer import Consumer, Subscription, handler_map
from runtime.database import Connection
from runtime.messages import Envelope
from runtime.outbox import OutboxRelay
from runtime.settings import ServiceSettings
from runtime.streams import commands_stream, stream_configs
from tests.support.application import migrated_database
from tests.support.polling import eventually
from tools.runner.nats import NatsCluster

STREAM = commands_stream("inventory")
WAIT_S = 60.0


def reserve() -> commands_pb2.ReserveStock:
    return commands_pb2.ReserveStock(
        command_id=str(uuid.uuid4()),
        order_id=str(uuid.uuid4()),
        lines=[inventory_pb2.StockLine(product_id="p-1", quantity=1)],
    )


@pytest.fixture
async def bus(nats_cluster: NatsCluster) -> AsyncIterator[Bus]:
    bus = Bus(nats_cluster.urls.split(","), "cluster-test", 2.0, replicas=3)
    await bus.connect()
    await bus.ensure_streams()
    try:
        yield bus
    finally:
        await bus.close()


async def publish_through(bus: Bus, envelope: Envelope) -> None:
    """Publishes until acknowledged, as the outbox relay does: an election or a reconnect
    makes a publish time out or find no responder for a while."""
    for _ in range(int(WAIT_S / 0.2)):
        try:
            await bus.publish(envelope)
            return
        except Exception:
            await asyncio.sleep(0.2)
    raise AssertionError(f"{envelope.message_id} never acknowledged")


async def step_down_leaders(cluster: NatsCluster, durable: str | None) -> None:
    """Asks the stream's and the consumer's (if any) leaders to hand over to another node (what
    an operator does before maintenance; an election like the one after a crash)."""
    nc = await nats.connect(servers=cluster.urls.split(","))
    subjects = [f"$JS.API.STREAM.LEADER.STEPDOWN.{STREAM}"]
    if durable is not None:
        subjects.append(f"$JS.API.CONSUMER.LEADER.STEPDOWN.{STREAM}.{durable}")
    try:
        for subject in subjects:
            await nc.request(subject, b"", timeout=5)
    finally:
        await nc.close()


async def test_streams_have_three_replicas_and_existing_ones_are_scaled_up(
    nats_cluster: NatsCluster,
) -> None:
    bus = Bus(nats_cluster.urls.split(","), "cluster-test", 2.0, replicas=1)
    await bus.connect()
    try:
        await bus.ensure_streams()  # as a deployment that ran on one replica before
        bus.replicas = 3
        await bus.ensure_streams()
        await bus.ensure_streams()  # again: nothing to change
        for config in stream_configs():
            info = await bus.js.stream_info(str(config.name))
            assert info.config.num_replicas == 3
        names = [str(c.name) for c in stream_configs()]
        await eventually(  # the new replicas are placed and filled in the background
            lambda: asyncio.to_thread(lambda: {s: nats_cluster.last_sequences(s) for s in names}),
            lambda seen: all(-1 not in by_node.values() for by_node in seen.values()),
            WAIT_S,
            "a replica of every stream on every node",
        )
    finally:
        await bus.close()


async def test_a_republished_message_is_stored_once(bus: Bus) -> None:
    envelope = Envelope.wrap(reserve())
    first = await bus.publish(envelope)
    again = await bus.publish(envelope)
    assert not first.duplicate
    assert again.duplicate
    assert again.seq == first.seq
    assert (await bus.js.stream_info(STREAM)).state.messages == 1


async def test_consumer_keeps_going_through_leader_moves_and_a_dead_server(
    bus: Bus, nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    applied: list[str] = []

    def record(conn: Connection, command: commands_pb2.ReserveStock) -> None:
        applied.append(command.command_id)

    settings = dataclasses.replace(
        ServiceSettings.from_env("inventory"),
        consumer_ack_wait_s=2.0,
        consumer_idle_check_s=0.5,
    )
    sub = Subscription(STREAM, "cluster-test", handler_map((commands_pb2.ReserveStock, record)))
    sent: list[str] = []

    async def send(count: int) -> None:
        for _ in range(count):
            envelope = Envelope.wrap(reserve())
            await publish_through(bus, envelope)
            sent.append(envelope.message_id)

    async def applied_ids() -> list[str]:
        return sorted(set(applied))

    async def all_applied() -> None:
        await eventually(
            applied_ids,
            lambda seen: seen == sorted(sent),
            WAIT_S,
            "every command applied",
        )

    async with migrated_database(tmp_path, "inventory", []) as db:
        consumer = Consumer(sub, bus, db, settings)
        task = asyncio.create_task(consumer.run())
        try:
            await send(10)
            await all_applied()
            info = await bus.js.consumer_info(STREAM, sub.durable)
            assert info.cluster is not None
            assert len(info.cluster.replicas or []) == 2  # inherits the stream's three

            # Leaders move while the connection stays up.
            await step_down_leaders(nats_cluster, sub.durable)
            await send(10)
            await all_applied()

            # The server the bus is connected to dies: it reconnects to a survivor.
            dead = bus.server
            generation = bus.generation
            victim = next(n for n in nats_cluster.nodes if n.url == dead)
            victim.kill()
            await send(10)
            await all_applied()
            assert bus.server not in ("", dead)
            assert bus.generation > generation
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    assert len(applied) == len(set(applied)) == 30  # the inbox kept redeliveries out

    victim.start()
    await eventually(
        lambda: asyncio.to_thread(nats_cluster.caught_up, [STREAM]),
        bool,
        WAIT_S,
        "the restarted node caught up",
    )


async def test_relay_window_through_a_leader_move_and_a_dead_server(
    bus: Bus, nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    """The relay publishes with a window in flight while the stream's leader moves and the
    node it is connected to dies: the unacknowledged tail of a window is republished, so every
    command is stored once and each order's commands stay in the order they were staged."""
    staged: list[commands_pb2.ReleaseStock] = []

    def stage(conn: Connection, first: int, count: int) -> None:
        for n in range(first, first + count):
            command = commands_pb2.ReleaseStock(
                command_id=str(uuid.uuid4()), order_id=f"ord-{n % 7}", reason=str(n)
            )
            outbox.stage(conn, command)
            staged.append(command)

    async def stage_some(rounds: int) -> None:
        for _ in range(rounds):
            await db.write(partial(stage, first=len(staged), count=10))

    async with migrated_database(tmp_path, "orders", []) as db:
        relay = OutboxRelay(db, bus, poll_interval_s=0.2, batch_size=100, publish_window=64)
        task = asyncio.create_task(relay.run())
        try:
            await stage_some(10)
            await step_down_leaders(nats_cluster, None)
            await stage_some(10)
            victim = next(n for n in nats_cluster.nodes if n.url == bus.server)
            victim.kill()
            await stage_some(10)
            await eventually(
                lambda: db.read(outbox.pending_count), lambda n: n == 0, WAIT_S, "all published"
            )
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    state = (await bus.js.stream_info(STREAM)).state
    stored = [
        commands_pb2.ReleaseStock.FromString((await bus.js.get_msg(STREAM, seq)).data or b"")
        for seq in range(state.first_seq, state.last_seq + 1)
    ]
    assert sorted(c.command_id for c in stored) == sorted(c.command_id for c in staged)
    for order_id in {c.order_id for c in staged}:
        in_stream = [int(c.reason) for c in stored if c.order_id == order_id]
        assert in_stream == sorted(in_stream), order_id
