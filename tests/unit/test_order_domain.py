"""The order aggregate and the place-order saga as plain Python: no process, socket or database."""

from __future__ import annotations

import pytest

from runtime.errors import FailedPreconditionError, InvalidArgumentError
from services.orders import domain, saga
from services.orders.domain import Line, OrderStatus
from services.orders.saga import SagaStep

T0 = 1_700_000_000.0


def placed() -> domain.Order:
    events = domain.place("ord_1", "alice", (Line("prd_a", 2, 500),), 1_000, "USD", "", T0)
    order = domain.replay(events)
    assert order is not None
    return order


def test_placed_order_is_pending_at_version_1() -> None:
    order = placed()
    assert (order.status, order.version, order.total_minor) == (OrderStatus.PENDING, 1, 1_000)


def types(messages: list) -> list[str]:  # type: ignore[type-arg]
    return [type(m).__name__ for m in messages]


def test_confirmation_needs_reserved_stock() -> None:
    order = placed()
    reserving = saga.start(order, T0, 30).saga
    assert saga.on_payment_authorized(reserving, order, T0).events == []
    reserved = saga.on_stock_reserved(reserving, order, T0, 30)
    order = domain.replay(reserved.events, order)  # type: ignore[assignment]
    confirmed = saga.on_payment_authorized(reserved.saga, order, T0)
    final = domain.replay(confirmed.events, order)
    assert final is not None and final.status is OrderStatus.CONFIRMED and final.version == 4


def test_cancellation_needs_both_returns_in_any_order() -> None:
    order = placed()
    reserved = saga.on_stock_reserved(saga.start(order, T0, 30).saga, order, T0, 30)
    order = domain.replay(reserved.events, order)  # type: ignore[assignment]
    order = domain.replay(saga.on_payment_authorized(reserved.saga, order, T0).events, order)  # type: ignore[assignment]
    order = domain.replay(domain.request_cancellation(order, "", T0), order)  # type: ignore[assignment]
    assert order.status is OrderStatus.CANCELLING
    after_refund = domain.replay(domain.record_payment_refunded(order, 1_000, T0), order)
    assert after_refund is not None and after_refund.status is OrderStatus.CANCELLING
    done = domain.replay(domain.record_stock_released(after_refund, T0), after_refund)
    assert done is not None and done.status is OrderStatus.CANCELLED
    assert domain.record_stock_released(done, T0) == []


def test_only_confirmed_orders_can_be_cancelled() -> None:
    with pytest.raises(FailedPreconditionError, match="PENDING"):
        domain.request_cancellation(placed(), "", T0)


def test_a_product_named_twice_is_refused_on_every_repeat() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        domain.validate_new_order([Line("p", 1), Line("q", 1), Line("p", 2), Line("p", 3)])
    assert [v.field for v in err.value.violations] == ["lines[2].product_id", "lines[3].product_id"]


def test_free_or_unpayable_orders_are_refused() -> None:
    with pytest.raises(FailedPreconditionError, match="not payable"):
        domain.priced([Line("a", 3)], {"a": (0, "USD")})
    with pytest.raises(FailedPreconditionError, match="not payable"):
        domain.priced([Line("a", 1000)], {"a": (10**10, "USD")})


def test_mixed_currencies_are_refused() -> None:
    with pytest.raises(FailedPreconditionError):
        domain.priced([Line("a", 1), Line("b", 1)], {"a": (1, "USD"), "b": (1, "EUR")})


def test_saga_happy_path_events_and_commands_in_order() -> None:
    order = placed()
    start = saga.start(order, T0, 30)
    assert (start.events, types(start.commands)) == ([], ["ReserveStock"])
    reserved = saga.on_stock_reserved(start.saga, order, T0, 30)
    assert types(reserved.events) == ["OrderStockReserved"]
    assert types(reserved.commands) == ["AuthorizePayment"]
    order = domain.replay(reserved.events, order)  # type: ignore[assignment]
    authorized = saga.on_payment_authorized(reserved.saga, order, T0)
    assert types(authorized.events) == ["OrderPaymentAuthorized", "OrderConfirmed"]
    assert authorized.saga.step is SagaStep.DONE
    assert types(authorized.commands) == ["CommitReservation", "CapturePayment"]


def authorizing(order: domain.Order) -> tuple[saga.Saga, domain.Order]:
    reserved = saga.on_stock_reserved(saga.start(order, T0, 30).saga, order, T0, 30)
    after = domain.replay(reserved.events, order)
    assert after is not None
    return reserved.saga, after


def test_decline_releases_then_rejects() -> None:
    current, order = authorizing(placed())
    declined = saga.on_payment_declined(current, "insufficient credit", T0, 30)
    assert declined.events == []
    assert types(declined.commands) == ["ReleaseStock"]
    released = saga.on_stock_released(declined.saga, order, T0)
    assert types(released.events) == ["OrderRejected"]
    rejected = domain.replay(released.events, order)
    assert rejected is not None
    assert rejected.rejection_reason == "payment declined: insufficient credit"


def test_shortage_rejects_at_once() -> None:
    order = placed()
    short = saga.on_stock_unavailable(saga.start(order, T0, 30).saga, order, "none left", T0)
    assert short.saga.step is SagaStep.DONE and short.commands == []
    rejected = domain.replay(short.events, order)
    assert rejected is not None and rejected.status is OrderStatus.REJECTED
    assert rejected.rejection_reason == "stock unavailable: none left"


def test_timeouts_compensate_then_reject_and_wait_on_the_compensation() -> None:
    current, order = authorizing(placed())
    assert saga.on_timeout(current, order, T0 + 29, 30) == saga.Transition(current)  # not yet due
    timed_out = saga.on_timeout(current, order, T0 + 31, 30)
    assert set(types(timed_out.commands)) == {"ReleaseStock", "VoidPayment"}
    released = saga.on_stock_released(timed_out.saga, order, T0 + 32)
    assert released.events == []  # still waiting for the void
    final = saga.on_timeout(released.saga, order, T0 + 62, 30)
    assert final.saga.step is SagaStep.COMPENSATION_PENDING
    assert [c.type_name for c in saga.pending_commands(final.saga)] == [
        "shop.payments.v1.VoidPayment"
    ]
    rejected = domain.replay(final.events, order)
    assert rejected is not None and rejected.status is OrderStatus.REJECTED
    assert "void" in rejected.rejection_reason
    assert saga.on_timeout(final.saga, rejected, T0 + 200, 30) == saga.Transition(final.saga)
    landed = saga.on_payment_voided(final.saga, rejected, T0 + 300)
    assert (landed.saga.step, landed.events) == (SagaStep.DONE, [])  # rejected once only


def test_late_replies_change_nothing() -> None:
    order = placed()
    done = saga.on_stock_unavailable(saga.start(order, T0, 30).saga, order, "none left", T0)
    assert saga.on_stock_reserved(done.saga, order, T0, 30) == saga.Transition(done.saga)
    assert saga.on_payment_authorized(done.saga, order, T0) == saga.Transition(done.saga)
    assert saga.on_timeout(done.saga, order, T0 + 100, 30) == saga.Transition(done.saga)


def test_only_the_sagas_own_release_is_a_compensation() -> None:
    order = placed()
    current = saga.start(order, T0, 30).saga
    assert saga.answers_release(current, f"{order.order_id}:release:0")
    assert not saga.answers_release(current, "evt_of_a_cancellation")
