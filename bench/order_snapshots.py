"""What snapshots save a read: loading an order of EVENTS events from orders' event store
(SQLite, through the repository GetOrder uses) with a snapshot every 100 events, against the
same order with none (a full replay). Median of LOADS loads each, in one process, side by
side.

    BENCH_ONLY=order_snapshots make bench
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench.rows import Row, scaled
from runtime.database import Connection, Database
from runtime.storage import database_at
from services.orders import domain, store
from services.orders.domain import Line

EVENTS = 1_000
SNAPSHOT_EVERY = 100
NEVER = 10**9
T0 = 1_700_000_000.0


def long_order(conn: Connection, snapshot_every: int) -> None:
    """An order placed, then EVENTS - 1 more events (stock reservations: any event the
    aggregate folds will do, and this one changes its state each time)."""
    order = store.save(
        conn,
        None,
        domain.place("ord_long", "bench", (Line("p", 1, 10),), 10, "USD", "", T0),
        snapshot_every,
    )
    while order.version < EVENTS:
        order = store.save(
            conn, order, domain.record_stock_reserved(order, T0 + order.version), snapshot_every
        )


async def median_load_s(folder: Path, snapshot_every: int, loads: int) -> float:
    db: Database = database_at(folder / f"orders-{snapshot_every}.sqlite3", None)
    await db.open({"orders": store.MIGRATIONS})
    try:
        await db.write(lambda conn: long_order(conn, snapshot_every))
        took = []
        for _ in range(loads):
            started = time.perf_counter()
            order = await db.read(lambda conn: store.load(conn, "ord_long"))
            took.append(time.perf_counter() - started)
            assert order is not None and order.version == EVENTS
        return statistics.median(took)
    finally:
        await db.close()


def rows() -> list[Row]:
    loads = scaled(200, 20)
    with tempfile.TemporaryDirectory() as tmp:
        snapshots = asyncio.run(median_load_s(Path(tmp), SNAPSHOT_EVERY, loads))
        replay = asyncio.run(median_load_s(Path(tmp), NEVER, loads))
    print(
        f"snapshots: load of a {EVENTS}-event order {snapshots * 1000:.2f} ms with a snapshot"
        f" every {SNAPSHOT_EVERY}, {replay * 1000:.2f} ms replaying all"
    )
    return [
        Row(
            f"order load ({EVENTS} events): snapshot every {SNAPSHOT_EVERY} / none",
            snapshots * 1000,
            "ms",
            replay * 1000,
            snapshots / replay,
            None,
        ),
    ]
