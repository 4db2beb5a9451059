"""The queries that run at every order or every poll find their rows through an index, never
by scanning a table that grows with the shop's history: a scan there made the CPU an order
costs rise minute by minute under steady load (the soak in docs/performance.md). Each store
function runs against SQLite with its service's schema; every statement it sent is explained
with EXPLAIN QUERY PLAN."""

from __future__ import annotations

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
    ],
)
def test_a_recurring_query_reads_an_index_not_the_whole_table(
    what: str, migrations: Sequence[str], call: Callable[[SqliteConnection], object]
) -> None:
    for plan in plans(migrations, call):
        assert "USING INDEX" in plan or "USING PRIMARY KEY" in plan, f"{what}: {plan}"
