"""Payments' repository: credit accounts and payments, in portable SQL (docs/platform.md)."""

from __future__ import annotations

from runtime.database import Connection, Row, announce_on_commit
from services.payments.domain import Account, DeclineReason, Payment, PaymentStatus

MIGRATIONS = [
    """CREATE TABLE IF NOT EXISTS accounts (
        customer_id TEXT PRIMARY KEY,
        credit_limit_minor INTEGER NOT NULL,
        available_minor INTEGER NOT NULL,
        currency_code TEXT NOT NULL,
        create_time REAL NOT NULL,
        update_time REAL NOT NULL,
        CHECK (available_minor >= 0 AND available_minor <= credit_limit_minor)
    )""",
    """CREATE TABLE IF NOT EXISTS provider_voids (
        idempotency_key TEXT PRIMARY KEY,
        since REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS payments (
        order_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        amount_minor INTEGER NOT NULL,
        currency_code TEXT NOT NULL,
        status TEXT NOT NULL,
        decline_reason TEXT,
        decline_message TEXT NOT NULL,
        version INTEGER NOT NULL,
        create_time REAL NOT NULL,
        update_time REAL NOT NULL
    )""",
    # The trace a PENDING payment was asked for in: the worker settles it later, in that trace.
    """CREATE TABLE IF NOT EXISTS payment_traces (
        order_id TEXT PRIMARY KEY,
        traceparent TEXT NOT NULL
    )""",
    # The worker looks for PENDING payments at every authorisation: without this index that
    # was a scan of every payment ever taken, CPU per order growing with the shop's history.
    "CREATE INDEX IF NOT EXISTS payments_pending ON payments (create_time) WHERE status = 'PENDING'",
]


def _account(r: Row) -> Account:
    return Account(
        customer_id=r["customer_id"],
        credit_limit_minor=r["credit_limit_minor"],
        available_minor=r["available_minor"],
        currency_code=r["currency_code"],
        create_time=r["create_time"],
        update_time=r["update_time"],
    )


def get_account(conn: Connection, customer_id: str) -> Account | None:
    row = conn.execute("SELECT * FROM accounts WHERE customer_id = ?", (customer_id,)).fetchone()
    return _account(row) if row else None


def insert_account(conn: Connection, a: Account) -> None:
    conn.execute(
        "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?)",
        (
            a.customer_id,
            a.credit_limit_minor,
            a.available_minor,
            a.currency_code,
            a.create_time,
            a.update_time,
        ),
    )


def change_available(conn: Connection, customer_id: str, delta_minor: int, at: float) -> None:
    """Draws on (negative) or returns to (positive) an account's available credit."""
    conn.execute(
        "UPDATE accounts SET available_minor = available_minor + ?, update_time = ?"
        " WHERE customer_id = ?",
        (delta_minor, at, customer_id),
    )


def _payment(r: Row) -> Payment:
    return Payment(
        order_id=r["order_id"],
        customer_id=r["customer_id"],
        amount_minor=r["amount_minor"],
        currency_code=r["currency_code"],
        status=PaymentStatus(r["status"]),
        decline_reason=DeclineReason(r["decline_reason"]) if r["decline_reason"] else None,
        decline_message=r["decline_message"],
        version=r["version"],
        create_time=r["create_time"],
        update_time=r["update_time"],
    )


def get_payment(conn: Connection, order_id: str) -> Payment | None:
    row = conn.execute("SELECT * FROM payments WHERE order_id = ?", (order_id,)).fetchone()
    return _payment(row) if row else None


PROVIDER_WORK = "payments.provider_work"
"""Announced by a write that leaves the provider something to do (workers.AuthorizationWorker)."""


def save_payment(conn: Connection, p: Payment) -> None:
    if p.status is PaymentStatus.PENDING:
        announce_on_commit(PROVIDER_WORK)
    conn.execute(
        "INSERT INTO payments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (order_id) DO UPDATE SET status = excluded.status,"
        " decline_reason = excluded.decline_reason, decline_message = excluded.decline_message,"
        " version = excluded.version, update_time = excluded.update_time",
        (
            p.order_id,
            p.customer_id,
            p.amount_minor,
            p.currency_code,
            p.status.value,
            p.decline_reason.value if p.decline_reason else None,
            p.decline_message,
            p.version,
            p.create_time,
            p.update_time,
        ),
    )


def pending_payments(conn: Connection) -> list[Payment]:
    rows = conn.execute(
        "SELECT * FROM payments WHERE status = 'PENDING' ORDER BY create_time LIMIT 100"
    )
    return [_payment(row) for row in rows]


def add_pending_void(conn: Connection, key: str, at: float) -> None:
    """Remembers that the provider must void `key`, until it confirms."""
    announce_on_commit(PROVIDER_WORK)
    conn.execute("INSERT INTO provider_voids VALUES (?, ?) ON CONFLICT DO NOTHING", (key, at))


def pending_voids(conn: Connection) -> list[str]:
    return [
        row[0] for row in conn.execute("SELECT idempotency_key FROM provider_voids ORDER BY since")
    ]


def remove_pending_void(conn: Connection, key: str) -> None:
    conn.execute("DELETE FROM provider_voids WHERE idempotency_key = ?", (key,))


def save_traceparent(conn: Connection, order_id: str, traceparent: str) -> None:
    conn.execute(
        "INSERT INTO payment_traces (order_id, traceparent) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (order_id, traceparent),
    )


def traceparent_of(conn: Connection, order_id: str) -> str | None:
    row = conn.execute(
        "SELECT traceparent FROM payment_traces WHERE order_id = ?", (order_id,)
    ).fetchone()
    return str(row["traceparent"]) if row else None
