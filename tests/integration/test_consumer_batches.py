"""A consumer applies a fetched batch in one transaction, on a real nats-server and a real
database (SQLite and PostgreSQL): effects land in stream order, a copy of a message in the same
batch changes nothing, and a message whose handler fails is retried and dead-lettered alone
while the rest of its batch commits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from nats.aio.client import Client
from shop.inventory.v1 import events_pb2

from runtime import consumer as consumer_module
from runtime.bus import Bus
from runtime.consumer import Consumer, Subscription, handler_map
from runtime.database import Connection, Database
from runtime.messages import HEADER_REPLAY_OF, Envelope
from runtime.settings import ServiceSettings
from runtime.storage import database_at
from runtime.streams import events_stream
from tests.support.polling import eventually
from tools.runner.nats import NatsServer

BATCH = 64
WAIT_S = 30.0
POISON = "ord-poison"

EFFECTS = [
    """CREATE TABLE IF NOT EXISTS released (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        order_id TEXT NOT NULL,
        event_id TEXT NOT NULL
    )"""
]


def record_release(conn: Connection, event: events_pb2.StockReleased) -> None:
    """The test's handler: one row per application, in the order applied; fails for POISON."""
    if event.order_id == POISON:
        raise RuntimeError("this order cannot be released")
    conn.execute(
        "INSERT INTO released (order_id, event_id) VALUES (?, ?)", (event.order_id, event.event_id)
    )


def released(conn: Connection) -> list[str]:
    rows = conn.execute("SELECT event_id FROM released ORDER BY seq").fetchall()
    return [row[0] for row in rows]


@dataclass
class Consuming:
    db: Database
    consumer: Consumer
    nc: Client

    async def publish(self, event_ids: list[str], order_of: Callable[[int], str]) -> None:
        for n, event_id in enumerate(event_ids):
            await self.send(events_pb2.StockReleased(event_id=event_id, order_id=order_of(n)))

    async def send(
        self, event: events_pb2.StockReleased, headers: dict[str, str] | None = None
    ) -> None:
        envelope = Envelope.wrap(event)
        await self.nc.jetstream().publish(
            envelope.subject, envelope.payload, headers={**envelope.headers(), **(headers or {})}
        )

    async def released(self, count: int) -> list[str]:
        return await eventually(
            lambda: self.db.read(released), lambda ids: len(ids) >= count, WAIT_S, "released"
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self.consumer.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture
async def consuming(
    nats_server: NatsServer,
    nats_client: Client,
    tmp_path: Path,
    storage: str,
    database_url: Callable[[str], str | None],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Consuming]:
    monkeypatch.setenv("CONCORD_CONSUMER_FETCH_BATCH", str(BATCH))
    monkeypatch.setenv("CONCORD_CONSUMER_MAX_DELIVER", "2")
    monkeypatch.setenv("CONCORD_CONSUMER_IDLE_CHECK_S", "0.5")
    monkeypatch.setenv("CONCORD_DATA_DIR", str(tmp_path))
    settings = ServiceSettings.from_env("batchtest")
    bus = Bus([nats_server.url], "consumer-batch-test", 5.0)
    await bus.connect()
    await bus.ensure_streams()
    db = database_at(tmp_path / "batchtest.sqlite3", database_url("batchtest"))
    await db.open({"inbox": consumer_module.MIGRATIONS, "batchtest": EFFECTS})
    sub = Subscription(
        stream=events_stream("inventory"),
        durable="batch-test",
        handlers=handler_map((events_pb2.StockReleased, record_release)),
    )
    try:
        yield Consuming(db, Consumer(sub, bus, db, settings), nats_client)
    finally:
        await bus.close()
        await db.close()


async def test_a_batch_applies_in_stream_order(consuming: Consuming) -> None:
    ids = [f"ev-{n}" for n in range(150)]  # more than a batch; five orders interleaved
    await consuming.publish(ids, lambda n: f"ord-{n % 5}")

    async with consuming.running():
        assert await consuming.released(150) == ids
    assert consuming.consumer.stats.processed == 150


async def test_a_copy_of_a_message_in_its_own_batch_changes_nothing(
    consuming: Consuming,
) -> None:
    """A replayed dead letter carries its original id: the inbox knows it, in the batch that
    also holds the original, and in a later batch."""
    first = events_pb2.StockReleased(event_id="ev-1", order_id="ord-1")
    await consuming.send(first)
    await consuming.send(
        events_pb2.StockReleased(event_id="ev-1-replay", order_id="ord-1"),
        {HEADER_REPLAY_OF: "ev-1"},
    )
    await consuming.publish(["ev-2"], lambda n: "ord-2")

    async with consuming.running():
        assert await consuming.released(2) == ["ev-1", "ev-2"]
        await consuming.send(
            events_pb2.StockReleased(event_id="ev-2-replay", order_id="ord-2"),
            {HEADER_REPLAY_OF: "ev-2"},
        )
        await eventually(
            lambda: asyncio.sleep(0, consuming.consumer.stats.duplicates),
            lambda duplicates: duplicates == 2,
            WAIT_S,
            "duplicates skipped",
        )
    assert await consuming.db.read(released) == ["ev-1", "ev-2"]


async def test_a_failing_message_is_dead_lettered_alone_and_its_batch_commits(
    consuming: Consuming,
) -> None:
    ids = [f"ev-{n}" for n in range(10)]
    await consuming.publish(ids, lambda n: POISON if n == 4 else f"ord-{n}")

    async with consuming.running():
        applied = await consuming.released(9)
        await eventually(
            lambda: asyncio.sleep(0, consuming.consumer.stats.dead_lettered),
            lambda dead: dead == 1,
            WAIT_S,
            "the poison message dead-lettered",
        )
    assert applied == [i for i in ids if i != "ev-4"]
    assert consuming.consumer.stats.processed == 9
