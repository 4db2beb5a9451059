"""Orders' repository, in portable SQL (docs/platform.md): the event-sourced order repository (events, snapshots), the read
models projected from the events, and the persisted saga state."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.message import Message
from shop.orders.v1 import events_pb2 as ev

from runtime import eventstore
from runtime.database import Connection, Row
from runtime.events import metadata_of
from services.orders.domain import Line, Order, OrderStatus, evolve, replay
from services.orders.saga import Saga, SagaStep

MIGRATIONS = [
    *eventstore.MIGRATIONS,
    """CREATE TABLE IF NOT EXISTS order_views (
        order_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        status TEXT NOT NULL,
        create_time REAL NOT NULL,
        state TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS order_views_by_customer ON order_views (customer_id, create_time DESC, order_id DESC)",
    """CREATE TABLE IF NOT EXISTS idempotency_keys (
        customer_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        order_id TEXT NOT NULL,
        PRIMARY KEY (customer_id, idempotency_key)
    )""",
    """CREATE TABLE IF NOT EXISTS sagas (
        order_id TEXT PRIMARY KEY,
        step TEXT NOT NULL,
        deadline REAL NOT NULL,
        state TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS sagas_open ON sagas (deadline) WHERE step != 'DONE'",
    # The deadline watcher asks for CANCELLING orders every poll: an index of those few, not a
    # scan of every order the shop ever took.
    "CREATE INDEX IF NOT EXISTS order_views_cancelling ON order_views (order_id)"
    " WHERE status = 'CANCELLING'",
]


def stream_id(order_id: str) -> str:
    return f"order-{order_id}"


# --- snapshots -----------------------------------------------------------------------------


def dump_order(order: Order) -> str:
    """The order as JSON. Its fields copied by hand, not through dataclasses.asdict, which
    deep-copies every value: 38 µs an order against 7, several times an order."""
    data: dict[str, Any] = dict(vars(order))
    data["status"] = order.status.value
    data["lines"] = [vars(line) for line in order.lines]
    return json.dumps(data)


def load_order_state(text: str) -> Order:
    data = json.loads(text)
    data["status"] = OrderStatus(data["status"])
    data["lines"] = tuple(Line(**line) for line in data["lines"])
    return Order(**data)


# --- the aggregate ------------------------------------------------------------------------


def load(
    conn: Connection,
    order_id: str,
    as_of_version: int | None = None,
    as_of_time: float | None = None,
) -> Order | None:
    """The order now, or as of a version or a time: the newest usable snapshot plus the events
    after it. A query by time replays from the start (snapshots are indexed by version)."""
    stream = stream_id(order_id)
    state: Order | None = None
    after = 0
    if as_of_time is None:
        snapshot = eventstore.latest_snapshot(conn, stream, as_of_version)
        if snapshot is not None:
            state, after = load_order_state(snapshot.state), snapshot.version
    events = eventstore.read_stream(conn, stream, after, as_of_version, as_of_time)
    return replay(events, state)


def load_full_replay(conn: Connection, order_id: str) -> Order | None:
    """The order from all of its events, ignoring snapshots: what snapshots must agree with."""
    return replay(eventstore.read_stream(conn, stream_id(order_id)))


def history(conn: Connection, order_id: str) -> list[Message]:
    return eventstore.read_stream(conn, stream_id(order_id))


def save(
    conn: Connection, order: Order | None, events: list[Message], snapshot_every: int
) -> Order:
    """Appends events at the order's version (a concurrent writer gets ConcurrencyConflict),
    updates the read models in the same transaction, and snapshots every `snapshot_every`."""
    if not events:
        if order is None:
            raise ValueError("nothing to save")
        return order
    old_version = order.version if order else 0
    order_id = metadata_of(events[0]).aggregate_id
    eventstore.append(conn, stream_id(order_id), old_version, events)
    state = order
    for event in events:
        state = evolve(state, event)
        project(conn, state, event)
    assert state is not None
    if state.version // snapshot_every > old_version // snapshot_every:
        eventstore.save_snapshot(conn, stream_id(order_id), state.version, dump_order(state))
    return state


# --- read models -----------------------------------------------------------------------------


def project(conn: Connection, state: Order, event: Message) -> None:
    conn.execute(
        "INSERT INTO order_views (order_id, customer_id, status, create_time, state) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, state = excluded.state",
        (
            state.order_id,
            state.customer_id,
            state.status.value,
            state.create_time,
            dump_order(state),
        ),
    )
    if isinstance(event, ev.OrderPlaced) and state.idempotency_key:
        conn.execute(
            "INSERT INTO idempotency_keys VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (state.customer_id, state.idempotency_key, state.order_id),
        )


def rebuild_read_models(conn: Connection) -> tuple[int, int]:
    """Drops the read models and replays every event into them; returns (orders, events)."""
    conn.execute("DELETE FROM order_views")
    conn.execute("DELETE FROM idempotency_keys")
    states: dict[str, Order] = {}
    count = 0
    for event in eventstore.read_all(conn):
        order_id = metadata_of(event).aggregate_id
        states[order_id] = evolve(states.get(order_id), event)
        project(conn, states[order_id], event)
        count += 1
    return len(states), count


def order_for_key(conn: Connection, customer_id: str, key: str) -> str | None:
    row = conn.execute(
        "SELECT order_id FROM idempotency_keys WHERE customer_id = ? AND idempotency_key = ?",
        (customer_id, key),
    ).fetchone()
    return str(row["order_id"]) if row else None


def view(conn: Connection, order_id: str) -> Order | None:
    row = conn.execute("SELECT state FROM order_views WHERE order_id = ?", (order_id,)).fetchone()
    return load_order_state(row["state"]) if row else None


def stuck_cancellations(conn: Connection, updated_before: float) -> list[Order]:
    """Orders CANCELLING since before `updated_before`: inventory or payments never answered."""
    rows = conn.execute("SELECT state FROM order_views WHERE status = 'CANCELLING'")
    orders = [load_order_state(row["state"]) for row in rows]
    return [o for o in orders if o.update_time < updated_before]


def list_orders(
    conn: Connection, customer_id: str, after: tuple[float, str] | None, limit: int
) -> list[Order]:
    """Newest first; `after` is the (create_time, order_id) of the last order of the page before."""
    if after is None:
        rows = conn.execute(
            "SELECT state FROM order_views WHERE customer_id = ? ORDER BY create_time DESC, order_id DESC LIMIT ?",
            (customer_id, limit),
        )
    else:
        rows = conn.execute(
            "SELECT state FROM order_views WHERE customer_id = ? AND (create_time, order_id) < (?, ?)"
            " ORDER BY create_time DESC, order_id DESC LIMIT ?",
            (customer_id, after[0], after[1], limit),
        )
    return [load_order_state(row["state"]) for row in rows]


# --- saga --------------------------------------------------------------------------------------


def _saga(row: Row) -> Saga:
    data = json.loads(row["state"])
    data["step"] = SagaStep(data["step"])
    data["commands_sent"] = tuple(tuple(x) for x in data.get("commands_sent", ()))
    return Saga(**data)


def get_saga(conn: Connection, order_id: str) -> Saga | None:
    row = conn.execute("SELECT state FROM sagas WHERE order_id = ?", (order_id,)).fetchone()
    return _saga(row) if row else None


def save_saga(conn: Connection, saga: Saga) -> None:
    data: dict[str, Any] = dict(vars(saga))  # not asdict: see dump_order
    data["step"] = saga.step.value
    conn.execute(
        "INSERT INTO sagas (order_id, step, deadline, state) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (order_id) DO UPDATE SET step = excluded.step, deadline = excluded.deadline,"
        " state = excluded.state",
        (saga.order_id, saga.step.value, saga.deadline, json.dumps(data)),
    )


def overdue_sagas(conn: Connection, now: float, limit: int = 100) -> list[Saga]:
    """Sagas in a step with a deadline that has passed (COMPENSATION_PENDING has none)."""
    rows = conn.execute(
        "SELECT state FROM sagas WHERE step != 'DONE' AND step != 'COMPENSATION_PENDING'"
        " AND deadline < ? ORDER BY deadline LIMIT ?",
        (now, limit),
    )
    return [_saga(row) for row in rows]


def list_sagas(
    conn: Connection, step: SagaStep | None, entered_before: float | None, after: str, limit: int
) -> list[Saga]:
    """Sagas by order id after `after`: in `step` (None: every step but DONE), and in it since
    before `entered_before` (None: any time; sagas saved before step times were kept count as
    entered at 0). The step time lives in the saga's JSON, which the engines query differently,
    so it is filtered here, page by page."""
    where = "order_id > ?" + (" AND step != 'DONE'" if step is None else " AND step = ?")
    found: list[Saga] = []
    cursor = after
    while len(found) < limit:
        args: list[object] = [cursor] if step is None else [cursor, step.value]
        rows = conn.execute(
            f"SELECT order_id, state FROM sagas WHERE {where} ORDER BY order_id LIMIT ?",
            (*args, limit),
        ).fetchall()
        for row in rows:
            saga = _saga(row)
            if entered_before is None or saga.step_time < entered_before:
                found.append(saga)
                if len(found) == limit:
                    break
        if len(rows) < limit:
            break
        cursor = rows[-1]["order_id"]
    return found


def saga_counts(conn: Connection) -> tuple[dict[str, int], dict[str, int]]:
    """Open sagas by step, and the compensations they still wait on, by kind: what an operator
    watches for a saga stuck compensating. Read at every scrape through the `sagas_open` index,
    so it costs the open sagas only: DONE sagas are not counted, as counting them would read
    every saga ever taken at every scrape (the table grows with the order history)."""
    open_sagas = [
        _saga(row) for row in conn.execute("SELECT state FROM sagas WHERE step != 'DONE'")
    ]
    by_step = dict.fromkeys((step.value for step in SagaStep if step is not SagaStep.DONE), 0)
    for saga in open_sagas:
        by_step[saga.step.value] += 1
    return by_step, {
        "release_stock": sum(saga.awaiting_release for saga in open_sagas),
        "void_payment": sum(saga.awaiting_void for saga in open_sagas),
    }
