"""What the outbox relay costs on top of JetStream: messages published per second by the relay
(read from SQLite, published, acks awaited, rows marked sent) with its window of acks in flight,
against nats-py itself publishing the same messages with the same window (`publish_async`), and
against the relay waiting for each ack (window 1, as before the window). One nats-server
(`sync_interval: always`), one SQLite file (`synchronous=FULL`), the same messages.

    make bench   (or: PYTHONPATH=.:bazel-bin/proto .venv/bin/python -m bench.outbox_relay)
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import nats as nats_client
from nats.aio.client import Client
from shop.inventory.v1 import commands_pb2

from bench.rows import Row, print_rows, scaled
from runtime import outbox
from runtime.bus import Bus
from runtime.database import Connection
from runtime.messages import Envelope
from runtime.outbox import DEFAULT_PUBLISH_WINDOW, OutboxRelay
from runtime.sqlite_database import SqliteDatabase
from runtime.streams import commands_stream
from tools.runner.nats import NatsServer
from tools.runner.ports import free_ports

ROUNDS = 6
ORDERS = 500
"""Aggregates the messages belong to, interleaved: a window holds at most one per order."""
REQUEST_TIMEOUT_S = 10.0


def envelopes(tag: str, count: int) -> list[Envelope]:
    """ReleaseStock commands the size of the saga's (about 100 bytes), fresh message ids."""
    return [
        Envelope.wrap(
            commands_pb2.ReleaseStock(
                command_id=f"{tag}-{n:08d}-{'x' * 24}",
                order_id=f"ord-{n % ORDERS:08d}-{'y' * 16}",
                reason="payment declined",
            )
        )
        for n in range(count)
    ]


async def nats_py_rate(nc: Client, messages: list[Envelope], window: int) -> float:
    """nats-py alone: `publish_async` with at most `window` acks outstanding."""
    js = nc.jetstream(publish_async_max_pending=window)
    started = time.perf_counter()
    for envelope in messages:
        await js.publish_async(envelope.subject, envelope.payload, headers=envelope.headers())
    await asyncio.wait_for(js.publish_async_completed(), REQUEST_TIMEOUT_S)
    return len(messages) / (time.perf_counter() - started)


async def relay_rate(bus: Bus, db: SqliteDatabase, messages: list[Envelope], window: int) -> float:
    """The relay draining an outbox that holds `messages` (staged beforehand, not timed)."""

    def stage_all(conn: Connection) -> None:
        for envelope in messages:
            outbox.stage_envelope(conn, envelope)

    await db.write(stage_all)
    relay = OutboxRelay(db, bus, poll_interval_s=60.0, batch_size=100, publish_window=window)
    started = time.perf_counter()
    published = 0
    while published < len(messages):
        published += await relay.publish_pending()
    elapsed = time.perf_counter() - started
    await db.write(partial(outbox.prune_published, published_before=time.time() + 1, limit=10**9))
    return len(messages) / elapsed


async def measure(nats: NatsServer, folder: Path) -> dict[str, float]:
    """Messages per second of each mode over every round. Each round runs the three modes
    back to back, in a rotating order, so a neighbour's load on the shared machine falls on
    all of them alike."""
    bus = Bus([nats.url], "bench-outbox-relay", REQUEST_TIMEOUT_S)
    await bus.connect()
    await bus.ensure_streams()
    db = SqliteDatabase(folder / "outbox.sqlite3")
    await db.open({"outbox": outbox.MIGRATIONS})
    nc = await nats_client.connect(nats.url)
    window = DEFAULT_PUBLISH_WINDOW
    count = scaled(1500, 300)
    modes: dict[str, Callable[[list[Envelope]], Awaitable[float]]] = {
        "nats_py": partial(nats_py_rate, nc, window=window),
        "relay": partial(relay_rate, bus, db, window=window),
        "relay_1": partial(relay_rate, bus, db, window=1),
    }
    elapsed = dict.fromkeys(modes, 0.0)
    cpu = dict.fromkeys(modes, 0.0)
    rounds = scaled(ROUNDS, 1)
    try:
        await relay_rate(bus, db, envelopes("warm", count), window)  # warm-up, not counted
        names = list(modes)
        for round_ in range(rounds):
            for name in names[round_ % 3 :] + names[: round_ % 3]:
                cpu_before = time.process_time()
                rate = await modes[name](envelopes(f"{name}-{round_}", count))
                cpu[name] += time.process_time() - cpu_before
                elapsed[name] += count / rate
            await bus.js.purge_stream(commands_stream("inventory"))
        sent = rounds * count
        return {
            **{name: sent / took for name, took in elapsed.items()},
            **{f"{name}_cpu_ms": 1000 * took / sent for name, took in cpu.items()},
        }
    finally:
        await nc.close()
        await bus.close()
        await db.close()


def rows() -> list[Row]:
    window = DEFAULT_PUBLISH_WINDOW
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        folder = Path(tmp)
        port, monitor = free_ports(2)
        nats = NatsServer(port, monitor, folder / "nats", folder / "logs").start()
        try:
            rates = asyncio.run(measure(nats, folder))
        finally:
            nats.stop()
    relay, raw, one = rates["relay"], rates["nats_py"], rates["relay_1"]
    cpu, cpu_one = rates["relay_cpu_ms"], rates["relay_1_cpu_ms"]
    return [
        Row(
            f"outbox relay msgs/s (window {window}) / nats-py publish_async (window {window})",
            relay,
            "msg/s",
            raw,
            relay / raw,
            None,
        ),
        Row(
            f"outbox relay msgs/s, window {window} / window 1 (ack by ack)",
            relay,
            "msg/s",
            one,
            relay / one,
            None,
        ),
        Row(
            f"outbox relay CPU per message (this process), window {window} / window 1",
            cpu,
            "ms/msg",
            cpu_one,
            cpu / cpu_one,
            None,
        ),
    ]


def main() -> None:
    print_rows(rows())


if __name__ == "__main__":
    main()
