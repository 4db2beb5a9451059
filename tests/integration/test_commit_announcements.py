"""`after_write` callbacks on each backend: one waiting for a topic runs after a commit that
announced it and after no other, never after a write that rolled back; one without a topic runs
after every commit (what the outbox relay and payments' worker rely on to wake)."""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from runtime.database import Connection, Database, announce_on_commit
from runtime.storage import database_at

TOPIC = "things.added"


@pytest.fixture
async def db(tmp_path: Path, database_url: Callable[[str], str | None]) -> AsyncIterator[Database]:
    database = database_at(tmp_path / "svc.sqlite3", database_url("svc"))
    await database.open({"things": ["CREATE TABLE IF NOT EXISTS things (id TEXT PRIMARY KEY)"]})
    yield database
    await database.close()


def add(thing: str, announce: bool) -> Callable[[Connection], None]:
    def work(conn: Connection) -> None:
        conn.execute("INSERT INTO things VALUES (?)", (thing,))
        if announce:
            announce_on_commit(TOPIC)

    return work


def failing(conn: Connection) -> None:
    add("doomed", announce=True)(conn)
    raise RuntimeError("the work failed after announcing")


async def test_a_topic_wakes_only_its_callbacks_and_only_after_a_commit(db: Database) -> None:
    woken: list[str] = []
    db.after_write(lambda: woken.append("topic"), TOPIC)
    db.after_write(lambda: woken.append("every"))

    await db.write(add("quiet", announce=False))
    assert woken == ["every"]

    await db.write(add("loud", announce=True))
    assert woken == ["every", "topic", "every"]

    with pytest.raises(RuntimeError):
        await db.write(failing)
    assert woken == ["every", "topic", "every"]  # rolled back: nobody is told

    await db.write(add("quiet-again", announce=False))
    assert woken[-1] == "every" and woken.count("topic") == 1  # not remembered from before


async def test_announcing_outside_a_write_is_ignored() -> None:
    announce_on_commit(TOPIC)  # a store driven on a bare connection (tests): nobody to tell


async def test_work_run_in_a_context_of_its_own_still_announces(db: Database) -> None:
    """A consumer applies each message of a batch in that message's own context."""
    woken: list[str] = []
    db.after_write(lambda: woken.append("topic"), TOPIC)
    own_context = contextvars.copy_context()

    await db.write(lambda conn: own_context.run(add("elsewhere", announce=True), conn))
    assert woken == ["topic"]
