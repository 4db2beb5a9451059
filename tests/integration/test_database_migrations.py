"""Schema migrations on a real SQLite file: new statements apply once, an edited one is
refused with a clear error instead of leaving a table silently stale."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.database import Database
from runtime.migrations import SchemaDriftError

V1 = ["CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY)"]
V2 = [*V1, "ALTER TABLE items ADD COLUMN name TEXT NOT NULL DEFAULT ''"]


async def open_with(path: Path, statements: list[str]) -> Database:
    db = Database(path)
    await db.open({"items": statements})
    return db


async def test_appended_statements_apply_once(tmp_path: Path) -> None:
    path = tmp_path / "svc.sqlite3"
    await (await open_with(path, V1)).close()
    db = await open_with(path, V2)  # would fail on a second ALTER if it ran again
    await db.write(lambda conn: conn.execute("INSERT INTO items VALUES ('a', 'first')"))
    await db.close()
    db = await open_with(path, V2)
    rows = await db.read(lambda conn: conn.execute("SELECT id, name FROM items").fetchall())
    await db.close()
    assert [tuple(r) for r in rows] == [("a", "first")]


async def test_an_edited_statement_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "svc.sqlite3"
    await (await open_with(path, V1)).close()
    edited = ["CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, extra INTEGER)"]
    with pytest.raises(SchemaDriftError, match=r"'items'\[0\] differs .* append-only"):
        await open_with(path, edited)


async def test_code_older_than_the_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "svc.sqlite3"
    await (await open_with(path, V2)).close()
    with pytest.raises(SchemaDriftError, match="newer version"):
        await open_with(path, V1)
