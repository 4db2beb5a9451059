"""What orders' store writes as JSON (an order's snapshot and read-model state, a saga's
state) reads back as the same value: the fields are copied by hand (services/orders/store.py),
so a field added to Order or Saga must survive the round trip without anyone remembering."""

from __future__ import annotations

import sqlite3

from runtime.sqlite_database import SqliteConnection
from services.orders import store
from services.orders.domain import Line, Order, OrderStatus
from services.orders.saga import Saga, SagaStep


def test_an_order_reads_back_as_it_was_written() -> None:
    order = Order(
        order_id="ord_1",
        customer_id="alice",
        status=OrderStatus.REJECTED,
        lines=(Line("p1", 1, 100), Line("p2", 3, 25)),
        total_minor=175,
        currency_code="EUR",
        idempotency_key="k-1",
        rejection_reason="payment declined",
        version=4,
        create_time=1.5,
        update_time=2.5,
        stock_reserved=True,
        stock_released=True,
    )
    assert store.load_order_state(store.dump_order(order)) == order


def test_a_saga_reads_back_as_it_was_saved() -> None:
    raw = sqlite3.connect(":memory:")
    raw.row_factory = sqlite3.Row
    for statement in store.MIGRATIONS:
        raw.execute(statement)
    conn = SqliteConnection(raw)
    saga = Saga(
        order_id="ord_1",
        step=SagaStep.COMPENSATION_PENDING,
        deadline=9.0,
        attempt=2,
        reason="payment timed out",
        awaiting_release=True,
        awaiting_void=True,
        step_time=3.0,
        entered={"RESERVING": 1.0, "COMPENSATION_PENDING": 3.0},
        resolution="",
        commands_sent=(("ReserveStock", "c-1"), ("ReleaseStock", "c-2")),
    )
    store.save_saga(conn, saga)
    assert store.get_saga(conn, "ord_1") == saga
