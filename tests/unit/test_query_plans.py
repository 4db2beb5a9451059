"""The queries that run at every order, every poll or every scrape find their rows through an
index, never by reading a table that grows with the shop's history: a scan there made the CPU
an order costs rise minute by minute under steady load (the soak in docs/performance.md). Each
store function runs against SQLite with its service's schema; every statement it sent is
explained with EXPLAIN QUERY PLAN, and each step must SEARCH an index or scan a partial one
(which holds the open rows only). Scanning a whole index, even a covering one, still reads the
history."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence

import pytest

from runtime.sqlite_database import SqliteConnection
from services.orders import store as orders_store
from services.payments import store as payments_store


def plans(migrations: Sequence[str], call: Callable[[SqliteConnection], object]) -> list[str]:
    """The query plan of every statement `call` sent, one line per step."""
    raw = sqlite3.connect(":memory:")
    raw.row_factory = sqlite3.Row
    for statement in migrations:
        raw.execute(statement)
    sent: list[str] = []
    raw.set_trace_callback(sent.append)
    call(SqliteConnection(raw))
    raw.set_trace_callback(None)
    assert sent, "the store function sent no statement"
    return [
        " / ".join(step[3] for step in raw.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall())
        for sql in sent
    ]


@pytest.mark.parametrize(
    ("what", "migrations", "call"),
    [
        (
            "payments' worker, at every authorisation",
            payments_store.MIGRATIONS,
            payments_store.pending_payments,
        ),
        (
            "orders' deadline watcher, every poll: overdue saga steps",
            orders_store.MIGRATIONS,
            lambda conn: orders_store.overdue_sagas(conn, now=1e9),
        ),
        (
            "orders' deadline watcher, every poll: cancellations overdue",
            orders_store.MIGRATIONS,
            lambda conn: orders_store.stuck_cancellations(conn, updated_before=1e9),
        ),
        (
            "orders' metrics, every scrape: open sagas",
            orders_store.MIGRATIONS,
            orders_store.saga_counts,
        ),
    ],
)
def test_a_recurring_query_reads_an_index_not_the_whole_table(
    what: str, migrations: Sequence[str], call: Callable[[SqliteConnection], object]
) -> None:
    partial = partial_indexes(migrations)
    for plan in plans(migrations, call):
        for step in plan.split(" / "):
            scanned = re.match(r"SCAN \w+ USING (?:COVERING )?INDEX (\w+)", step)
            assert step.startswith(("SEARCH", "USE TEMP B-TREE")) or (
                scanned is not None and scanned.group(1) in partial
            ), f"{what}: {plan}"


def partial_indexes(migrations: Sequence[str]) -> set[str]:
    raw = sqlite3.connect(":memory:")
    for statement in migrations:
        raw.execute(statement)
    rows = raw.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND sql LIKE '% WHERE %'"
    )
    return {name for (name,) in rows}
