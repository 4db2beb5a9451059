"""Stream limits on a real nats-server: streams made before there were limits are updated in
place by `ensure_streams`, services starting together or again ensure them without error, and a full command queue refuses a publish, which leaves the row in
the publisher's outbox to be sent once there is room: no command is dropped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from shop.inventory.v1 import commands_pb2

from runtime import outbox
from runtime.bus import Bus
from runtime.outbox import OutboxRelay
from runtime.sqlite_database import SqliteDatabase
from runtime.streams import (
    DAY_S,
    DEAD_LETTER_STREAM,
    DUPLICATE_WINDOW_S,
    StreamLimits,
    commands_stream,
    stream_configs,
)
from tools.runner.nats import NatsServer

SMALL_QUEUE = StreamLimits(command_max_bytes=4096)


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url)
    yield client
    await client.close()


async def connected_bus(nats_server: NatsServer, limits: StreamLimits) -> Bus:
    bus = Bus([nats_server.url], "retention-test", 5.0, limits=limits)
    await bus.connect()
    return bus


async def test_existing_streams_take_the_limits_in_place(
    nats_server: NatsServer, nc: Client
) -> None:
    js = nc.jetstream()
    for config in stream_configs():  # as they were before limits: no age, size or discard
        await js.add_stream(
            StreamConfig(
                name=config.name,
                subjects=config.subjects,
                storage=StorageType.FILE,
                retention=config.retention,
                duplicate_window=config.duplicate_window,
            )
        )
    await js.publish("shop.orders.events.OrderPlaced", b"kept", headers={"Nats-Msg-Id": "e-1"})
    bus = await connected_bus(nats_server, StreamLimits(dead_letter_max_age_s=3 * DAY_S))
    try:
        await bus.ensure_streams()
    finally:
        await bus.close()

    for config in stream_configs():
        info = await js.stream_info(str(config.name))
        assert info.config.max_bytes == config.max_bytes
        if config.retention == RetentionPolicy.WORK_QUEUE:
            assert info.config.discard == DiscardPolicy.NEW
            assert not info.config.max_age
        elif config.name == DEAD_LETTER_STREAM:
            assert info.config.discard == DiscardPolicy.NEW
            assert info.config.max_age == 3 * DAY_S
        else:
            assert info.config.discard == DiscardPolicy.OLD
            assert info.config.max_age == 7 * DAY_S
            assert info.config.duplicate_window == DUPLICATE_WINDOW_S
    assert (await js.stream_info("SHOP_ORDERS_EVENTS")).state.messages == 1  # nothing lost


async def test_services_starting_together_both_ensure_the_limited_streams(
    nats_server: NatsServer, nc: Client
) -> None:
    """JetStream refuses to re-add an existing stream whose max_bytes it has reserved (as if
    it were new): starting a second service, or two at once, must still succeed."""
    buses = [await connected_bus(nats_server, StreamLimits()) for _ in range(3)]
    try:
        await asyncio.gather(*(bus.ensure_streams() for bus in buses[:2]))
        await buses[2].ensure_streams()  # a restart, every stream already there
    finally:
        for bus in buses:
            await bus.close()

    names = {str(c.name) for c in stream_configs()}
    assert {str(info.config.name) for info in await nc.jetstream().streams_info()} >= names


async def test_a_full_command_queue_leaves_the_command_in_the_outbox(
    nats_server: NatsServer, nc: Client, tmp_path: Path
) -> None:
    bus = await connected_bus(nats_server, SMALL_QUEUE)
    db = SqliteDatabase(tmp_path / "orders.sqlite3")
    await db.open({"outbox": outbox.MIGRATIONS})
    try:
        await bus.ensure_streams()
        relay = OutboxRelay(db, bus, poll_interval_s=60.0, batch_size=1)
        padding = "x" * 1000
        n = 0
        while await db.read(outbox.pending_count) == 0:  # fill the queue until one is refused
            n += 1
            release = commands_pb2.ReleaseStock(
                command_id=f"c-{n}", order_id=f"o-{n}", reason=padding
            )
            await db.write(partial(outbox.stage, message=release))
            try:
                await relay.publish_pending()
            except Exception as refused:
                assert "maximum" in str(refused).lower()
        stream = commands_stream("inventory")
        assert (await nc.jetstream().stream_info(stream)).state.messages == n - 1
        assert await db.read(outbox.pending_count) == 1

        await nc.jetstream().purge_stream(stream)  # the consumer caught up: room again
        assert await relay.publish_pending() == 1
        assert await db.read(outbox.pending_count) == 0
    finally:
        await bus.close()
        await db.close()
