"""The order event store on each storage backend (a SQLite file, a PostgreSQL database): optimistic concurrency, snapshots that agree
with a full replay, read models rebuilt by replay."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from google.rpc import code_pb2

from runtime import eventstore
from runtime.database import Connection, Database
from runtime.errors import ConcurrencyConflictError
from runtime.grpc_errors import to_status
from runtime.storage import database_at
from services.orders import domain, store
from services.orders.domain import Line, OrderStatus
from tests.support.postgres import PostgresDatabases

T0 = 1_700_000_000.0


@pytest.fixture
async def db(tmp_path: Path, database_url: Callable[[str], str | None]):  # type: ignore[no-untyped-def]
    database = database_at(tmp_path / "orders.sqlite3", database_url("orders"))
    await database.open({"orders": store.MIGRATIONS})
    yield database
    await database.close()


def confirmed_then_cancelled(conn, snapshot_every: int) -> domain.Order:  # type: ignore[no-untyped-def]
    order = store.save(
        conn,
        None,
        domain.place("ord_1", "alice", (Line("p", 1, 10),), 10, "USD", "", T0),
        snapshot_every,
    )
    for step in (domain.record_stock_reserved, domain.confirm):
        order = store.save(conn, order, step(order, T0 + order.version), snapshot_every)
    order = store.save(conn, order, domain.request_cancellation(order, "", T0 + 5), snapshot_every)
    order = store.save(conn, order, domain.record_stock_released(order, T0 + 6), snapshot_every)
    return store.save(
        conn, order, domain.record_payment_refunded(order, 10, T0 + 7), snapshot_every
    )


async def test_long_stream_loads_from_its_snapshot_like_a_full_replay(db: Database) -> None:
    final = await db.write(lambda conn: confirmed_then_cancelled(conn, snapshot_every=3))
    assert final.status is OrderStatus.CANCELLED and final.version == 8

    snapshot_versions = await db.read(
        lambda conn: [r[0] for r in conn.execute("SELECT version FROM snapshots ORDER BY version")]
    )
    assert snapshot_versions == [4, 6]  # taken whenever a save crosses a multiple of 3
    from_snapshot = await db.read(lambda conn: store.load(conn, "ord_1"))
    full = await db.read(lambda conn: store.load_full_replay(conn, "ord_1"))
    assert from_snapshot == full == final
    history = await db.read(lambda conn: store.history(conn, "ord_1"))
    for version in range(1, 9):
        at_version = await db.read(partial(store.load, order_id="ord_1", as_of_version=version))
        assert at_version == domain.replay(history[:version])


async def test_stale_writer_gets_a_conflict_not_an_overwrite(db: Database) -> None:
    def race(conn):  # type: ignore[no-untyped-def]
        order = store.save(
            conn, None, domain.place("ord_2", "bob", (Line("p", 1, 10),), 10, "USD", "", T0), 5
        )
        store.save(conn, order, domain.record_stock_reserved(order, T0), 5)
        store.save(conn, order, domain.reject(order, "second writer", T0), 5)  # still at version 1

    with pytest.raises(ConcurrencyConflictError) as err:
        await db.write(race)
    assert (err.value.expected_version, err.value.actual_version) == (1, 2)
    assert (
        await db.read(lambda conn: store.load(conn, "ord_2")) is None
    )  # the whole transaction rolled back


async def test_read_models_rebuild_from_events(db: Database) -> None:
    await db.write(lambda conn: confirmed_then_cancelled(conn, snapshot_every=3))
    await db.write(
        lambda conn: conn.execute("UPDATE order_views SET status = 'GARBAGE', state = '{}'")
    )
    orders, events = await db.write(store.rebuild_read_models)
    assert (orders, events) == (1, 8)
    view = await db.read(lambda conn: store.view(conn, "ord_1"))
    assert view is not None and view.status is OrderStatus.CANCELLED


async def test_two_instances_appending_to_one_stream_one_gets_the_conflict(
    tmp_path: Path, pg_databases: PostgresDatabases
) -> None:
    """Two processes' adapters on one PostgreSQL database both read version 0, then both
    append: one commits, the other (run again after its serialization failure, or refused by
    the unique key) gets ConcurrencyConflictError, which callers see as ABORTED."""
    url = pg_databases.create("orders")
    writers = [database_at(tmp_path / "unused.sqlite3", url) for _ in range(2)]
    for writer in writers:
        await writer.open({"orders": store.MIGRATIONS})
    both_read = threading.Barrier(2, timeout=10)
    first_attempts: set[int] = set()

    def append(n: int, conn: Connection) -> int:
        events = domain.place(f"ord_{n}", "carol", (Line("p", 1, 10),), 10, "USD", "", T0)
        # Both loaded the same aggregate at version 0, as two instances would, and append its
        # first event; a write that runs again after a serialization failure still expects 0.
        eventstore.current_version(conn, "order-ord_x")
        if n not in first_attempts:  # only the first run of each waits for the other
            first_attempts.add(n)
            both_read.wait()
        return eventstore.append(conn, "order-ord_x", 0, events)

    results = await asyncio.gather(
        *(writer.write(partial(append, n)) for n, writer in enumerate(writers)),
        return_exceptions=True,
    )
    for writer in writers:
        await writer.close()
    conflicts = [r for r in results if isinstance(r, ConcurrencyConflictError)]
    assert sorted(map(type, results), key=str) == sorted([int, ConcurrencyConflictError], key=str)
    assert conflicts[0].expected_version == 0 and conflicts[0].actual_version >= 1
    assert to_status(conflicts[0]).code == code_pb2.ABORTED
