"""Schema migrations on each storage backend (a SQLite file, a PostgreSQL database): new
statements apply once, an edited one is refused with a clear error instead of leaving a table
silently stale, both engines keep the same ledger, and instances opening one PostgreSQL
database at once migrate it once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime import lease, outbox, paging
from runtime.database import Database
from runtime.migrations import SchemaDriftError
from runtime.server import database_migrations
from runtime.storage import database_at
from services.orders import store as orders_store

V1 = ["CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY)"]
V2 = [*V1, "ALTER TABLE items ADD COLUMN name TEXT NOT NULL DEFAULT ''"]
LEDGER = "SELECT grp, position, sha256 FROM schema_migrations ORDER BY grp, position"


@pytest.fixture
def location(tmp_path: Path, database_url: Callable[[str], str | None]) -> Callable[[], Database]:
    """Opens (a new adapter on) the test's one database, whichever backend it is on."""
    url = database_url("svc")
    return lambda: database_at(tmp_path / "svc.sqlite3", url)


async def open_with(new: Callable[[], Database], statements: list[str]) -> Database:
    db = new()
    await db.open({"items": statements})
    return db


async def test_appended_statements_apply_once(location: Callable[[], Database]) -> None:
    await (await open_with(location, V1)).close()
    db = await open_with(location, V2)  # would fail on a second ALTER if it ran again
    await db.write(lambda conn: conn.execute("INSERT INTO items VALUES ('a', 'first')"))
    await db.close()
    db = await open_with(location, V2)
    rows = await db.read(lambda conn: conn.execute("SELECT id, name FROM items").fetchall())
    await db.close()
    assert [tuple(r) for r in rows] == [("a", "first")]


async def test_an_edited_statement_is_refused(location: Callable[[], Database]) -> None:
    await (await open_with(location, V1)).close()
    edited = ["CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, extra INTEGER)"]
    with pytest.raises(SchemaDriftError, match=r"'items'\[0\] differs .* append-only"):
        await open_with(location, edited)


async def test_code_older_than_the_database_is_refused(location: Callable[[], Database]) -> None:
    await (await open_with(location, V2)).close()
    with pytest.raises(SchemaDriftError, match="newer version"):
        await open_with(location, V1)


async def ledger_of(db: Database) -> list[tuple[object, ...]]:
    return await db.read(lambda conn: [tuple(r) for r in conn.execute(LEDGER).fetchall()])


async def test_both_engines_record_the_same_ledger_for_a_service(
    tmp_path: Path, pg_databases: object
) -> None:
    migrations = database_migrations("orders", orders_store.MIGRATIONS)
    ledgers = []
    for url in (None, pg_databases.create("orders")):  # type: ignore[attr-defined]
        db = database_at(tmp_path / "orders.sqlite3", url)
        await db.open(migrations)
        ledgers.append(await ledger_of(db))
        await db.close()
    assert ledgers[0] == ledgers[1]
    groups = {row[0] for row in ledgers[0]}
    assert {"outbox", "inbox", "paging", "leases", "orders"} <= groups
    assert len(ledgers[0]) == sum(len(statements) for statements in migrations.values())


async def test_instances_opening_one_postgres_database_at_once_migrate_it_once(
    tmp_path: Path, pg_databases: object
) -> None:
    url = pg_databases.create("svc")  # type: ignore[attr-defined]
    migrations = {
        "outbox": outbox.MIGRATIONS,
        "paging": paging.MIGRATIONS,
        "leases": lease.MIGRATIONS,
    }
    instances = [database_at(tmp_path / "unused.sqlite3", url) for _ in range(4)]
    await asyncio.gather(*(db.open(migrations) for db in instances))
    ledgers = [await ledger_of(db) for db in instances]
    keys = [await db.read(paging.load_key) for db in instances]
    for db in instances:
        await db.close()
    assert all(ledger == ledgers[0] for ledger in ledgers)
    assert len(ledgers[0]) == sum(len(statements) for statements in migrations.values())
    assert len(set(keys)) == 1  # one signing key: the INSERT ran once
