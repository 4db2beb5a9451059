"""Applications in-process: a migrated temporary database and the messages a use case staged."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from google.protobuf.message import Message

from runtime import consumer, outbox, paging
from runtime.database import Database
from runtime.messages import decode


@asynccontextmanager
async def migrated_database(
    path: Path, service: str, migrations: Sequence[str]
) -> AsyncIterator[Database]:
    """A database with every group a service opens with (runtime/server.py), then closed."""
    db = Database(path / f"{service}.sqlite3")
    await db.open(
        {
            "outbox": outbox.MIGRATIONS,
            "inbox": consumer.MIGRATIONS,
            "paging": paging.MIGRATIONS,
            service: migrations,
        }
    )
    try:
        yield db
    finally:
        await db.close()


async def staged_messages(db: Database) -> list[Message]:
    """Every message staged in the outbox so far, decoded, oldest first."""
    rows = await db.read(
        lambda conn: conn.execute("SELECT type_name, payload FROM outbox ORDER BY seq").fetchall()
    )
    return [decode(row["type_name"], row["payload"]) for row in rows]
