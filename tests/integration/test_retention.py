"""Retention on each storage backend, with `now` given so nothing sleeps: published outbox rows
go after their grace period while unsent and recent ones stay; inbox entries go after the inbox
retention while recent ones stay and still drop a redelivery; the SQLite WAL shrinks to nothing
after a checkpoint under writes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from google.protobuf.message import Message
from shop.inventory.v1 import commands_pb2

from runtime import consumer, outbox
from runtime.consumer import apply_once
from runtime.database import Connection, Database
from runtime.retention import Retention, prune_inbox, prune_outbox
from runtime.settings import RetentionSettings
from runtime.sqlite_database import SqliteDatabase
from runtime.storage import database_at

GRACE_S = 3600.0
INBOX_RETENTION_S = RetentionSettings().inbox_retention_s
CONSUMER = "inventory-commands"

pytestmark = pytest.mark.usefixtures("storage")


@pytest.fixture
async def db(tmp_path: Path, database_url: Callable[[str], str | None]) -> AsyncIterator[Database]:
    database = database_at(tmp_path / "svc.sqlite3", database_url("svc"))
    await database.open({"outbox": outbox.MIGRATIONS, "inbox": consumer.MIGRATIONS})
    yield database
    await database.close()


def command(n: int) -> Message:
    return commands_pb2.ReleaseStock(command_id=f"cmd-{n}", order_id=f"order-{n}")


async def stage(db: Database, n: int) -> str:
    envelope = await db.write(lambda conn: outbox.stage(conn, command(n), "00-" + "1" * 32))
    return envelope.message_id


async def mark_sent(db: Database, message_id: str, at: float) -> None:
    await db.write(
        lambda conn: conn.execute(
            "UPDATE outbox SET sent_at = ? WHERE message_id = ?", (at, message_id)
        )
    )


async def outbox_ids(db: Database) -> set[str]:
    rows = await db.read(lambda conn: conn.execute("SELECT message_id FROM outbox").fetchall())
    return {row["message_id"] for row in rows}


async def process(db: Database, message_id: str, applied: list[str]) -> bool:
    def handle(conn: Connection, message: Message) -> None:
        applied.append(message_id)

    return await db.write(
        lambda conn: apply_once(conn, CONSUMER, message_id, "t", command(0), handle)
    )


async def test_published_rows_go_after_the_grace_unsent_and_recent_stay(db: Database) -> None:
    now = time.time()
    old, recent, unsent = [await stage(db, n) for n in range(3)]
    await mark_sent(db, old, now - GRACE_S - 1)
    await mark_sent(db, recent, now - GRACE_S + 60)

    assert await prune_outbox(db, GRACE_S, 100, now) == 1
    assert await outbox_ids(db) == {recent, unsent}
    # Days later: the recent one has aged out; the unsent one is the only copy and stays.
    assert await prune_outbox(db, GRACE_S, 100, now + 10 * GRACE_S) == 1
    assert await outbox_ids(db) == {unsent}


async def test_outbox_prunes_in_bounded_batches_until_done(db: Database) -> None:
    now = time.time()
    for n in range(7):
        await mark_sent(db, await stage(db, n), now - GRACE_S - 1)

    assert await prune_outbox(db, GRACE_S, 3, now) == 7  # batches of 3, 3 and 1
    assert await outbox_ids(db) == set()


async def test_inbox_entries_go_after_retention_recent_ones_still_drop_duplicates(
    db: Database,
) -> None:
    applied: list[str] = []
    for message_id in ("m-old-1", "m-old-2", "m-recent"):
        assert await process(db, message_id, applied)
    processed_at = time.time()
    now = processed_at + INBOX_RETENTION_S - 60  # the recent entry is just inside retention
    await db.write(
        lambda conn: conn.execute(
            "UPDATE inbox SET processed_at = ? WHERE message_id LIKE 'm-old-%'",
            (now - INBOX_RETENTION_S - 1,),
        )
    )

    assert await prune_inbox(db, INBOX_RETENTION_S, 1, now) == 2
    # A redelivery of the message still within retention changes nothing.
    assert not await process(db, "m-recent", applied)
    assert applied == ["m-old-1", "m-old-2", "m-recent"]
    assert await db.read(consumer.inbox_size) == 1


async def test_one_run_prunes_both_stores_and_reports_what_is_left(db: Database) -> None:
    now = time.time()
    await mark_sent(db, await stage(db, 1), now - 2 * GRACE_S)
    await stage(db, 2)
    assert await process(db, "m-1", [])
    job = Retention(db, RetentionSettings(outbox_retention_s=GRACE_S))

    pruned = await job.run_once(now + INBOX_RETENTION_S + 1)

    assert (pruned.outbox, pruned.inbox, pruned.outbox_left) == (1, 1, 1)
    assert await db.read(consumer.inbox_size) == 0
    readings = {(r.name, r.labels): r.value for r in await job.retention_readings()}
    assert readings[("concord_retention_pruned", (("store", "inbox"),))] == 1
    assert readings[("concord_retention_rows", (("store", "outbox"),))] == 1
    assert ("concord_retention_rows", (("store", "inbox"),)) not in readings  # never counted


async def test_the_sqlite_wal_shrinks_after_a_checkpoint_under_writes(db: Database) -> None:
    if not isinstance(db, SqliteDatabase):
        assert await db.maintain() == {}  # PostgreSQL: autovacuum's job
        return
    wal = db.path.with_name(db.path.name + "-wal")
    for round_ in range(3):
        for n in range(200):
            await stage(db, round_ * 1000 + n)
        grown = wal.stat().st_size
        assert grown > 0

        report = await db.maintain()

        assert report["wal_busy"] == 0
        assert wal.stat().st_size == 0
