"""For application tests: a service's use cases in-process, on a temporary database (SQLite,
or a fresh PostgreSQL database when the test runs on that `storage`) migrated the way the service's own is (runtime.server.database_migrations), with messages fed
through the real inbox (runtime.consumer.apply_once) and the outbox rows read back decoded.
No NATS, no gRPC, no process: the same for orders, inventory and payments.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message

from runtime.consumer import Subscription, apply_once
from runtime.database import Connection, Database
from runtime.messages import decode, message_id
from runtime.server import database_migrations
from runtime.storage import database_at


@asynccontextmanager
async def migrated_database(
    folder: Path, service: str, migrations: Sequence[str], url: str | None = None
) -> AsyncIterator[Database]:
    """A fresh database with the platform's and the service's tables, closed afterwards: the
    PostgreSQL one at `url`, else `<service>.sqlite3` under `folder`."""
    db = database_at(folder / f"{service}.sqlite3", url)
    await db.open(database_migrations(service, migrations))
    try:
        yield db
    finally:
        await db.close()


@dataclass(frozen=True)
class StagedMessage:
    """One outbox row, decoded."""

    message_id: str
    subject: str
    message: Message


def _staged(conn: Connection) -> list[StagedMessage]:
    rows = conn.execute(
        "SELECT message_id, subject, type_name, payload FROM outbox ORDER BY seq"
    ).fetchall()
    return [
        StagedMessage(row["message_id"], row["subject"], decode(row["type_name"], row["payload"]))
        for row in rows
    ]


async def staged_rows(db: Database) -> list[StagedMessage]:
    """Every outbox row, oldest first, with its subject and message id."""
    return await db.read(_staged)


async def staged_messages(db: Database) -> list[Message]:
    """Every message staged in the outbox, oldest first, decoded."""
    return [row.message for row in await staged_rows(db)]


async def deliver(db: Database, subscriptions: list[Subscription], message: Message) -> bool:
    """Delivers `message` as a consumer would: in one transaction, its id into the inbox of the
    subscription that handles its type, then that handler. False when it was a redelivery
    (the inbox already held the id) and nothing ran."""
    type_name = message.DESCRIPTOR.full_name
    found = [
        (sub.durable, sub.handlers[type_name]) for sub in subscriptions if type_name in sub.handlers
    ]
    if not found:
        raise LookupError(f"no subscription handles {type_name}")
    durable, handler = found[0]
    return await db.write(
        lambda conn: apply_once(conn, durable, message_id(message), type_name, message, handler)
    )
