"""Orders' application in-process on a temporary SQLite database: feed a command or a fact,
then check the order's events, its state and the outbox rows. No NATS, no gRPC process;
inventory's pricing is a stand-in of the clients.py interface."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from google.protobuf.message import Message
from shop.inventory.v1 import events_pb2 as inventory_ev
from shop.payments.v1 import events_pb2 as payments_ev
from shop.payments.v1 import payments_pb2

from runtime import paging
from runtime.database import Connection, Database
from runtime.errors import FailedPreconditionError, NotFoundError
from services.orders import saga, store
from services.orders.application import Orders, OrdersConfig
from services.orders.clients import Prices
from services.orders.domain import Line, Order, OrderStatus
from services.orders.saga import SagaStep
from tests.support.application import migrated_database, staged_messages

CONFIRMED = ["OrderPlaced", "OrderStockReserved", "OrderPaymentAuthorized", "OrderConfirmed"]


class FixedPrices:
    """Inventory's pricing as a stand-in: every product at 1,000 minor units of USD."""

    async def prices(self, product_ids: list[str]) -> Prices:
        return {p: (1_000, "USD") for p in product_ids}


@pytest.fixture
async def db(tmp_path: Path, database_url: Callable[[str], str | None]) -> AsyncIterator[Database]:
    async with migrated_database(
        tmp_path, "orders", store.MIGRATIONS, database_url("orders")
    ) as database:
        yield database


@pytest.fixture
def app(db: Database) -> Orders:
    return Orders(db, FixedPrices(), paging.PageTokens(b"k" * 32), OrdersConfig(5, 30.0))


def types(messages: list[Message]) -> list[str]:
    return [type(m).__name__ for m in messages]


async def place(app: Orders, key: str = "") -> Order:
    return await app.place_order("alice", [Line("prd_a", 2)], key)


async def feed(db: Database, app: Orders, fact: Message) -> None:
    """What the consumer does: the handler inside one transaction."""
    handlers = {
        inventory_ev.StockReserved: app.on_stock_reserved,
        inventory_ev.StockUnavailable: app.on_stock_unavailable,
        inventory_ev.StockReleased: app.on_stock_released,
        payments_ev.PaymentAuthorized: app.on_payment_authorized,
        payments_ev.PaymentDeclined: app.on_payment_declined,
        payments_ev.PaymentVoided: app.on_payment_voided,
        payments_ev.PaymentRefunded: app.on_payment_refunded,
    }
    handler = handlers[type(fact)]

    def handle(conn: Connection) -> None:
        handler(conn, fact)

    await db.write(handle)


async def history(app: Orders, order_id: str) -> list[str]:
    return types(await app.list_order_events("alice", order_id))


async def staged_after(db: Database, count: int) -> list[str]:
    return types((await staged_messages(db))[count:])


def command_id(messages: list[Message], name: str) -> str:
    return next(m.command_id for m in messages if type(m).__name__ == name)  # type: ignore[attr-defined]


async def confirmed(db: Database, app: Orders) -> Order:
    order = await place(app)
    await feed(db, app, inventory_ev.StockReserved(order_id=order.order_id))
    await feed(db, app, payments_ev.PaymentAuthorized(order_id=order.order_id))
    return order


async def test_placed_order_is_pending_with_reserve_stock_staged(db: Database, app: Orders) -> None:
    order = await place(app)
    assert (order.status, order.total_minor, order.currency_code) == (
        OrderStatus.PENDING,
        2_000,
        "USD",
    )
    assert types(await staged_messages(db)) == ["OrderPlaced", "ReserveStock"]


async def test_same_idempotency_key_returns_the_same_order(db: Database, app: Orders) -> None:
    first = await place(app, key="checkout-42")
    second = await place(app, key="checkout-42")
    assert second.order_id == first.order_id
    assert types(await staged_messages(db)) == ["OrderPlaced", "ReserveStock"]


async def test_reserved_then_authorised_confirms_and_commits(db: Database, app: Orders) -> None:
    order = await place(app)
    await feed(db, app, inventory_ev.StockReserved(order_id=order.order_id))
    assert await staged_after(db, 2) == ["OrderStockReserved", "AuthorizePayment"]
    await feed(db, app, payments_ev.PaymentAuthorized(order_id=order.order_id))
    assert await staged_after(db, 4) == [
        "OrderPaymentAuthorized",
        "OrderConfirmed",
        "CommitReservation",
        "CapturePayment",
    ]
    final = await app.get_order("alice", order.order_id, 0, None)
    assert final.status is OrderStatus.CONFIRMED
    assert await history(app, order.order_id) == CONFIRMED


async def test_shortage_rejects_with_nothing_to_compensate(db: Database, app: Orders) -> None:
    order = await place(app)
    await feed(db, app, inventory_ev.StockUnavailable(order_id=order.order_id, reason="none"))
    final = await app.get_order("alice", order.order_id, 0, None)
    assert (final.status, final.rejection_reason) == (
        OrderStatus.REJECTED,
        "stock unavailable: none",
    )
    assert await staged_after(db, 2) == ["OrderRejected"]
    assert await history(app, order.order_id) == ["OrderPlaced", "OrderRejected"]


async def test_decline_releases_stock_then_rejects(db: Database, app: Orders) -> None:
    order = await place(app)
    await feed(db, app, inventory_ev.StockReserved(order_id=order.order_id))
    await feed(
        db,
        app,
        payments_ev.PaymentDeclined(
            order_id=order.order_id, reason=payments_pb2.DECLINE_REASON_INSUFFICIENT_CREDIT
        ),
    )
    staged = await staged_messages(db)
    assert types(staged[4:]) == ["ReleaseStock"]
    pending = await app.get_order("alice", order.order_id, 0, None)
    assert pending.status is OrderStatus.PENDING  # until the stock is back
    release = command_id(staged, "ReleaseStock")
    await feed(db, app, inventory_ev.StockReleased(order_id=order.order_id, causation_id=release))
    final = await app.get_order("alice", order.order_id, 0, None)
    assert final.status is OrderStatus.REJECTED
    assert final.rejection_reason == "payment declined: DECLINE_REASON_INSUFFICIENT_CREDIT"
    assert await history(app, order.order_id) == [
        "OrderPlaced",
        "OrderStockReserved",
        "OrderRejected",
    ]


async def test_timed_out_payment_releases_and_voids_then_rejects(
    db: Database, app: Orders, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = await place(app)
    await feed(db, app, inventory_ev.StockReserved(order_id=order.order_id))
    assert await app.time_out_overdue_steps() == 0  # nothing is due yet
    later = time.time() + 31
    monkeypatch.setattr("services.orders.application.now", lambda: later)
    assert await app.time_out_overdue_steps() == 1
    assert sorted(await staged_after(db, 4)) == ["ReleaseStock", "VoidPayment"]
    staged = await staged_messages(db)
    await feed(
        db,
        app,
        inventory_ev.StockReleased(
            order_id=order.order_id, causation_id=command_id(staged, "ReleaseStock")
        ),
    )
    assert (await app.get_order("alice", order.order_id, 0, None)).status is OrderStatus.PENDING
    await feed(db, app, payments_ev.PaymentVoided(order_id=order.order_id))
    final = await app.get_order("alice", order.order_id, 0, None)
    assert (final.status, final.rejection_reason) == (
        OrderStatus.REJECTED,
        "timed out waiting for payments",
    )
    assert await history(app, order.order_id) == [
        "OrderPlaced",
        "OrderStockReserved",
        "OrderRejected",
    ]


async def test_unanswered_compensation_rejects_after_another_step(
    db: Database, app: Orders, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = await place(app)
    start = time.time()
    monkeypatch.setattr("services.orders.application.now", lambda: start + 31)
    await app.time_out_overdue_steps()  # reserving timed out: release sent
    monkeypatch.setattr("services.orders.application.now", lambda: start + 62)
    await app.time_out_overdue_steps()  # the release was never answered
    final = await app.get_order("alice", order.order_id, 0, None)
    assert final.status is OrderStatus.REJECTED
    assert (
        final.rejection_reason == "timed out waiting for inventory (compensation queued: release)"
    )
    assert await history(app, order.order_id) == ["OrderPlaced", "OrderRejected"]


async def compensation_pending(
    db: Database, app: Orders, monkeypatch: pytest.MonkeyPatch
) -> tuple[Order, float]:
    """An order whose payment step timed out, and whose release and void nobody answered."""
    order = await place(app)
    await feed(db, app, inventory_ev.StockReserved(order_id=order.order_id))
    start = time.time()
    monkeypatch.setattr("services.orders.application.now", lambda: start + 31)
    await app.time_out_overdue_steps()  # authorizing timed out: release and void sent
    monkeypatch.setattr("services.orders.application.now", lambda: start + 62)
    await app.time_out_overdue_steps()  # neither was answered
    return order, start + 62


async def test_unanswered_compensation_leaves_the_saga_compensation_pending(
    db: Database, app: Orders, monkeypatch: pytest.MonkeyPatch
) -> None:
    order, at = await compensation_pending(db, app, monkeypatch)
    final = await app.get_order("alice", order.order_id, 0, None)
    assert final.status is OrderStatus.REJECTED  # the order does not wait, as before
    pending = await app.get_saga(order.order_id)
    assert pending.step is SagaStep.COMPENSATION_PENDING
    assert [(c.type_name, c.command_id) for c in saga.pending_commands(pending)] == [
        ("shop.inventory.v1.ReleaseStock", f"{order.order_id}:release:0"),
        ("shop.payments.v1.VoidPayment", f"{order.order_id}:void:0"),
    ]
    assert pending.step_time == at
    assert [command_id for _, command_id in pending.commands_sent] == [
        f"{order.order_id}:reserve:0",
        f"{order.order_id}:authorize:0",
        f"{order.order_id}:release:0",
        f"{order.order_id}:void:0",
    ]
    assert list(pending.entered) == [
        "RESERVING",
        "AUTHORIZING",
        "COMPENSATING",
        "COMPENSATION_PENDING",
    ]
    assert await app.time_out_overdue_steps() == 0  # no deadline: not timed out again
    listed = await app.list_sagas(SagaStep.COMPENSATION_PENDING, 0, 0, "")
    assert [s.order_id for s in listed.sagas] == [order.order_id]
    assert (await app.list_sagas(SagaStep.RESERVING, 0, 0, "")).sagas == []
    assert (await app.list_sagas(None, 10, 0, "")).sagas == []  # entered it just now
    monkeypatch.setattr("services.orders.application.now", lambda: at + 11)
    assert [s.order_id for s in (await app.list_sagas(None, 10, 0, "")).sagas] == [order.order_id]

    await feed(
        db,
        app,
        inventory_ev.StockReleased(
            order_id=order.order_id, causation_id=f"{order.order_id}:release:0"
        ),
    )
    assert (await app.get_saga(order.order_id)).step is SagaStep.COMPENSATION_PENDING
    await feed(db, app, payments_ev.PaymentVoided(order_id=order.order_id))
    assert (await app.get_saga(order.order_id)).step is SagaStep.DONE  # the compensations landed
    assert await history(app, order.order_id) == [
        "OrderPlaced",
        "OrderStockReserved",
        "OrderRejected",
    ]


async def test_retried_compensation_is_sent_with_new_ids_and_recorded(
    db: Database, app: Orders, monkeypatch: pytest.MonkeyPatch
) -> None:
    order, _ = await compensation_pending(db, app, monkeypatch)
    sent = len(await staged_messages(db))
    retried = await app.retry_compensation(order.order_id)
    assert retried.step is SagaStep.COMPENSATION_PENDING
    staged = (await staged_messages(db))[sent:]
    assert types(staged) == ["OrderCompensationRetried", "ReleaseStock", "VoidPayment"]
    assert command_id(staged, "ReleaseStock") == f"{order.order_id}:release:1"
    assert list(staged[0].command_ids) == [  # type: ignore[attr-defined]
        f"{order.order_id}:release:1",
        f"{order.order_id}:void:1",
    ]
    await feed(
        db,
        app,
        inventory_ev.StockReleased(
            order_id=order.order_id, causation_id=f"{order.order_id}:release:1"
        ),
    )
    await feed(db, app, payments_ev.PaymentVoided(order_id=order.order_id))
    assert (await app.get_saga(order.order_id)).step is SagaStep.DONE
    final = await app.get_order("alice", order.order_id, 0, None)
    assert final.status is OrderStatus.REJECTED
    assert (await history(app, order.order_id))[-1] == "OrderCompensationRetried"


async def test_resolved_saga_is_done_with_the_reason_recorded(
    db: Database, app: Orders, monkeypatch: pytest.MonkeyPatch
) -> None:
    order, _ = await compensation_pending(db, app, monkeypatch)
    resolved = await app.resolve_saga(order.order_id, "stock counted by hand")
    assert (resolved.step, resolved.resolution) == (SagaStep.DONE, "stock counted by hand")
    events = await app.list_order_events("alice", order.order_id)
    assert types(events)[-1] == "OrderSagaResolved"
    assert events[-1].reason == "stock counted by hand"  # type: ignore[attr-defined]
    assert list(events[-1].abandoned_command_ids) == [  # type: ignore[attr-defined]
        f"{order.order_id}:release:0",
        f"{order.order_id}:void:0",
    ]
    assert (await app.get_order("alice", order.order_id, 0, None)).status is OrderStatus.REJECTED
    with pytest.raises(FailedPreconditionError):
        await app.retry_compensation(order.order_id)  # nothing is pending any more


async def test_operators_cannot_touch_a_saga_that_is_not_pending(app: Orders) -> None:
    order = await place(app)
    with pytest.raises(FailedPreconditionError, match="RESERVING"):
        await app.retry_compensation(order.order_id)
    with pytest.raises(FailedPreconditionError):
        await app.resolve_saga(order.order_id, "why not")
    with pytest.raises(NotFoundError):
        await app.get_saga("ord_missing")


async def test_overdue_cancellations_are_listed(
    db: Database, app: Orders, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = await confirmed(db, app)
    await app.cancel_order("alice", order.order_id, "changed my mind")
    assert await app.overdue_cancellations(60) == []
    later = time.time() + 61
    monkeypatch.setattr("services.orders.application.now", lambda: later)
    assert [o.order_id for o in await app.overdue_cancellations(60)] == [order.order_id]


async def test_cancellation_choreography_ends_cancelled(db: Database, app: Orders) -> None:
    order = await confirmed(db, app)
    cancelling = await app.cancel_order("alice", order.order_id, "changed my mind")
    assert cancelling.status is OrderStatus.CANCELLING
    assert (await staged_messages(db))[-1].DESCRIPTOR.name == "OrderCancellationRequested"
    await feed(db, app, payments_ev.PaymentRefunded(order_id=order.order_id, amount_minor=2_000))
    await feed(
        db, app, inventory_ev.StockReleased(order_id=order.order_id, causation_id="evt_cancel")
    )
    final = await app.get_order("alice", order.order_id, 0, None)
    assert final.status is OrderStatus.CANCELLED
    assert await history(app, order.order_id) == [
        *CONFIRMED,
        "OrderCancellationRequested",
        "OrderPaymentRefunded",
        "OrderStockReleased",
        "OrderCancelled",
    ]


async def test_redelivered_fact_changes_nothing(db: Database, app: Orders) -> None:
    order = await place(app)
    reserved = inventory_ev.StockReserved(order_id=order.order_id)
    await feed(db, app, reserved)
    before = (await staged_messages(db), await history(app, order.order_id))
    await feed(db, app, reserved)
    assert (await staged_messages(db), await history(app, order.order_id)) == before
    order = await confirmed(db, app)
    before = (await staged_messages(db), await history(app, order.order_id))
    await feed(db, app, payments_ev.PaymentAuthorized(order_id=order.order_id))
    await feed(db, app, inventory_ev.StockReserved(order_id=order.order_id))
    assert (await staged_messages(db), await history(app, order.order_id)) == before


async def test_another_customers_order_is_not_found(app: Orders) -> None:
    order = await place(app)
    with pytest.raises(NotFoundError):
        await app.cancel_order("mallory", order.order_id, "")


async def saga_metrics(app: Orders) -> dict[tuple[str, str], float]:
    """The orders metrics a scrape reads: (metric, label value) -> value."""
    return {(r.name, r.labels[0][1]): r.value for r in await app.saga_readings()}


async def test_saga_metrics_follow_a_compensation_until_it_lands(
    db: Database, app: Orders, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = await place(app)
    assert (await saga_metrics(app))[("concord_sagas", "RESERVING")] == 1
    await feed(db, app, inventory_ev.StockReserved(order_id=order.order_id))
    later = time.time() + 31
    monkeypatch.setattr("services.orders.application.now", lambda: later)
    await app.time_out_overdue_steps()  # payments never answered: release and void
    compensating = await saga_metrics(app)
    assert compensating[("concord_sagas", "COMPENSATING")] == 1
    assert compensating[("concord_compensations_pending", "release_stock")] == 1
    assert compensating[("concord_compensations_pending", "void_payment")] == 1

    staged = await staged_messages(db)
    release = command_id(staged, "ReleaseStock")
    await feed(db, app, inventory_ev.StockReleased(order_id=order.order_id, causation_id=release))
    assert (await saga_metrics(app))[("concord_compensations_pending", "release_stock")] == 0
    await feed(db, app, payments_ev.PaymentVoided(order_id=order.order_id))
    done = await saga_metrics(app)
    assert {done[("concord_sagas", s.value)] for s in SagaStep if s is not SagaStep.DONE} == {0}
    assert ("concord_sagas", "DONE") not in done  # never counted: it is the whole history
    assert done[("concord_compensations_pending", "void_payment")] == 0
