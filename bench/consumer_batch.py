"""What applying a fetched batch in one transaction buys: messages a consumer applies per second
(fetched from JetStream, inbox row and handler in a transaction, committed, acked) when it
fetches and commits 64 at a time, against one at a time. The real `Consumer` on a real
nats-server and a real database: SQLite with `synchronous=FULL`, and PostgreSQL (fsync on)
when its binaries are here. The handler writes one row, as the shop's handlers write a few.

    make bench   (or: PYTHONPATH=.:bazel-bin/proto .venv/bin/python -m bench.consumer_batch)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import nats as nats_client
from shop.inventory.v1 import events_pb2

from bench.rows import Row, print_rows, scaled
from runtime import consumer as consumer_module
from runtime.bus import Bus
from runtime.consumer import Consumer, Subscription, handler_map
from runtime.database import Connection, Database
from runtime.messages import Envelope
from runtime.postgres_database import PostgresDatabase
from runtime.settings import ServiceSettings
from runtime.sqlite_database import SqliteDatabase
from runtime.streams import events_stream
from tools.runner.nats import NatsServer
from tools.runner.ports import free_ports
from tools.runner.postgres import PostgresServer

BATCH = 64
DRAIN_TIMEOUT_S = 600.0
EFFECTS = [
    """CREATE TABLE IF NOT EXISTS released (
        event_id TEXT PRIMARY KEY,
        order_id TEXT NOT NULL
    )"""
]


def record_release(conn: Connection, event: events_pb2.StockReleased) -> None:
    conn.execute(
        "INSERT INTO released (event_id, order_id) VALUES (?, ?)", (event.event_id, event.order_id)
    )


async def publish(url: str, tag: str, count: int) -> None:
    """`count` StockReleased events on the inventory events stream (not timed)."""
    nc = await nats_client.connect(url)
    js = nc.jetstream(publish_async_max_pending=256)
    for n in range(count):
        envelope = Envelope.wrap(
            events_pb2.StockReleased(event_id=f"{tag}-{n:08d}", order_id=f"ord-{n % 500:08d}")
        )
        await js.publish_async(envelope.subject, envelope.payload, headers=envelope.headers())
    await js.publish_async_completed()
    await nc.close()


async def applied_rate(
    bus: Bus, db: Database, settings: ServiceSettings, batch: int, count: int
) -> float:
    """Messages per second for a fresh durable to apply `count` events waiting on the stream."""
    tag = f"b{batch}-{time.monotonic_ns()}"
    stream = events_stream("inventory")
    await bus.js.purge_stream(stream)  # this run's events alone: a new durable reads them all
    await publish(bus.servers[0], tag, count)
    sub = Subscription(
        stream=stream,
        durable=f"bench-{tag}",
        handlers=handler_map((events_pb2.StockReleased, record_release)),
        filter_subjects=["shop.inventory.events.StockReleased"],
    )
    consumer = Consumer(sub, bus, db, dataclasses.replace(settings, consumer_fetch_batch=batch))
    started = time.perf_counter()
    task = asyncio.create_task(consumer.run())
    try:
        deadline = started + DRAIN_TIMEOUT_S
        while consumer.stats.processed < count:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"batch {batch}: {consumer.stats.processed} of {count}")
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await bus.js.delete_consumer(sub.stream, sub.durable)
    return count / elapsed


async def measure(nats: NatsServer, db: Database) -> tuple[float, float]:
    settings = ServiceSettings.from_env("bench")
    bus = Bus([nats.url], "bench-consumer-batch", 10.0)
    await bus.connect()
    await bus.ensure_streams()
    await db.open({"inbox": consumer_module.MIGRATIONS, "bench": EFFECTS})
    try:
        await applied_rate(bus, db, settings, BATCH, scaled(500, 100))  # warm-up
        batched = await applied_rate(bus, db, settings, BATCH, scaled(6000, 600))
        single = await applied_rate(bus, db, settings, 1, scaled(1500, 150))
        return batched, single
    finally:
        await bus.close()
        await db.close()


def row(engine: str, batched: float, single: float) -> Row:
    return Row(
        f"consumer msgs applied/s on {engine}, batch {BATCH} / batch 1",
        batched,
        "msg/s",
        single,
        batched / single,
        None,
    )


def rows() -> list[Row]:
    found: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-consumer-") as tmp:
        folder = Path(tmp)
        port, monitor, pg_port = free_ports(3)
        nats = NatsServer(port, monitor, folder / "nats", folder / "logs").start()
        try:
            sqlite = SqliteDatabase(folder / "consumer.sqlite3")
            found.append(row("SQLite", *asyncio.run(measure(nats, sqlite))))
            found += postgres_rows(nats, pg_port)
        finally:
            nats.stop()
    return found


def postgres_rows(nats: NatsServer, port: int) -> list[Row]:
    """The same on a durable PostgreSQL server (fsync on); none when its binaries are missing.
    Its folder is a fresh one of its own: the server runs as `postgres` when we are root."""
    folder = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    server = PostgresServer(port=port, data_dir=folder, log_dir=folder / "logs")
    try:
        try:
            server.start()
        except FileNotFoundError:
            return []
        db = PostgresDatabase(server.create_database("bench_consumer"))
        return [row("PostgreSQL", *asyncio.run(measure(nats, db)))]
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    print_rows(rows())


if __name__ == "__main__":
    main()
