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


def test_confirmation_needs_reserved_stock() -> None:
    order = placed()
    assert domain.confirm(order, T0) == []
    reserved = domain.replay(domain.record_stock_reserved(order, T0), order)
    assert reserved is not None
    confirmed = domain.replay(domain.confirm(reserved, T0), reserved)
    assert (
        confirmed is not None
        and confirmed.status is OrderStatus.CONFIRMED
        and confirmed.version == 4
    )


def test_cancellation_needs_both_returns_in_any_order() -> None:
    order = placed()
    for decide in (domain.record_stock_reserved, domain.confirm):
        order = domain.replay(decide(order, T0), order)  # type: ignore[assignment]
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


def test_saga_happy_path_commands_in_order() -> None:
    order = placed()
    start = saga.start(order, T0, 30)
    assert [type(c).__name__ for c in start.commands] == ["ReserveStock"]
    reserved = saga.on_stock_reserved(start.saga, order, T0, 30)
    assert reserved.stock_reserved and [type(c).__name__ for c in reserved.commands] == [
        "AuthorizePayment"
    ]
    authorized = saga.on_payment_authorized(reserved.saga)
    assert authorized.confirmed and authorized.saga.step is SagaStep.DONE
    assert [type(c).__name__ for c in authorized.commands] == [
        "CommitReservation",
        "CapturePayment",
    ]


def test_decline_releases_then_rejects() -> None:
    order = placed()
    authorizing = saga.on_stock_reserved(saga.start(order, T0, 30).saga, order, T0, 30).saga
    declined = saga.on_payment_declined(authorizing, "insufficient credit", T0, 30)
    assert declined.rejected_reason is None
    assert [type(c).__name__ for c in declined.commands] == ["ReleaseStock"]
    released = saga.on_stock_released(declined.saga)
    assert released.rejected_reason == "payment declined: insufficient credit"


def test_timeouts_compensate_then_give_up_waiting() -> None:
    order = placed()
    authorizing = saga.on_stock_reserved(saga.start(order, T0, 30).saga, order, T0, 30).saga
    timed_out = saga.on_timeout(authorizing, T0 + 31, 30)
    assert {type(c).__name__ for c in timed_out.commands} == {"ReleaseStock", "VoidPayment"}
    released = saga.on_stock_released(timed_out.saga)
    assert released.rejected_reason is None  # still waiting for the void
    final = saga.on_timeout(released.saga, T0 + 62, 30)
    assert final.saga.step is SagaStep.DONE
    assert final.rejected_reason is not None and "void" in final.rejected_reason


def test_late_replies_change_nothing() -> None:
    order = placed()
    done = saga.on_stock_unavailable(saga.start(order, T0, 30).saga, "none left")
    assert saga.on_stock_reserved(done.saga, order, T0, 30).commands == []
    assert saga.on_payment_authorized(done.saga).confirmed is False
