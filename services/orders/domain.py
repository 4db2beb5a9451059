"""The order aggregate, event-sourced: its state is a fold of its events.

Events are the protobuf messages of shop.orders.v1 (the contract is the model); everything here
is plain Python over them, with no transport or storage. Decisions take the current state and
return the new events; `evolve` applies one event. Nothing else changes an order.

Two flows move an order, and each has one owner of its rules:
- placing (PENDING to CONFIRMED or REJECTED) is the place-order saga's (`saga.py`): its steps
  decide, and these functions only write the events a step implies, with no second guard;
- cancelling (CONFIRMED to CANCELLING to CANCELLED) is the order's own, decided here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from google.protobuf.message import Message
from shop.orders.v1 import events_pb2 as ev

from runtime.errors import FailedPreconditionError, FieldViolation, InvalidArgumentError
from runtime.events import metadata_of, stamped
from runtime.validation import Violations

MAX_TOTAL_MINOR = 10**12
"""The most payments authorises at once (payments' MAX_AMOUNT_MINOR)."""


class OrderStatus(Enum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class Line:
    product_id: str
    quantity: int
    unit_price_minor: int = 0


@dataclass(frozen=True)
class Order:
    order_id: str
    customer_id: str
    status: OrderStatus
    lines: tuple[Line, ...]
    total_minor: int
    currency_code: str
    idempotency_key: str
    rejection_reason: str = ""
    version: int = 0
    create_time: float = 0.0
    update_time: float = 0.0
    stock_reserved: bool = False
    payment_authorized: bool = False
    stock_released: bool = False
    payment_refunded: bool = False


def evolve(state: Order | None, event: Message) -> Order:
    """Applies one event; the only place an order's state changes."""
    meta = metadata_of(event)
    at, version = meta.occur_time, meta.version
    if isinstance(event, ev.OrderPlaced):
        lines = tuple(Line(x.product_id, x.quantity, x.unit_price_minor) for x in event.lines)
        return Order(
            order_id=event.order_id,
            customer_id=event.customer_id,
            status=OrderStatus.PENDING,
            lines=lines,
            total_minor=event.total_minor,
            currency_code=event.currency_code,
            idempotency_key=event.idempotency_key,
            version=version,
            create_time=at,
            update_time=at,
        )
    if state is None:
        raise ValueError(f"{type(event).__name__} before OrderPlaced")
    state = replace(state, version=version, update_time=at)
    if isinstance(event, ev.OrderStockReserved):
        return replace(state, stock_reserved=True)
    if isinstance(event, ev.OrderPaymentAuthorized):
        return replace(state, payment_authorized=True)
    if isinstance(event, ev.OrderConfirmed):
        return replace(state, status=OrderStatus.CONFIRMED)
    if isinstance(event, ev.OrderRejected):
        return replace(state, status=OrderStatus.REJECTED, rejection_reason=event.reason)
    if isinstance(event, ev.OrderCancellationRequested):
        return replace(state, status=OrderStatus.CANCELLING)
    if isinstance(event, ev.OrderStockReleased):
        return replace(state, stock_released=True)
    if isinstance(event, ev.OrderPaymentRefunded):
        return replace(state, payment_refunded=True)
    if isinstance(event, ev.OrderCancelled):
        return replace(state, status=OrderStatus.CANCELLED)
    if isinstance(event, ev.OrderCompensationRetried | ev.OrderSagaResolved):
        return state  # operators' actions on the saga: on the record, no change to the order
    raise ValueError(f"unknown order event {type(event).__name__}")


def replay(events: list[Message], state: Order | None = None) -> Order | None:
    for event in events:
        state = evolve(state, event)
    return state


# --- validation -------------------------------------------------------------------------


def validate_new_order(lines: list[Line]) -> None:
    """What the contract cannot say: each product at most once. Counts, lengths and ranges are
    rules on PlaceOrderRequest, enforced before this runs (runtime/contract_rules)."""
    v = Violations()
    seen: set[str] = set()
    for i, line in enumerate(lines):
        v.check(
            line.product_id not in seen,
            f"lines[{i}].product_id",
            "appears twice; one line per product",
        )
        seen.add(line.product_id)
    v.raise_if_any()


def priced(
    lines: list[Line], prices: dict[str, tuple[int, str]]
) -> tuple[tuple[Line, ...], int, str]:
    """Lines with their unit prices, the total, and the single currency they share."""
    currencies = {prices[line.product_id][1] for line in lines}
    if len(currencies) != 1:
        raise FailedPreconditionError(
            "MIXED_CURRENCIES", f"products are priced in several currencies: {sorted(currencies)}"
        )
    result = tuple(Line(x.product_id, x.quantity, prices[x.product_id][0]) for x in lines)
    total = sum(x.quantity * x.unit_price_minor for x in result)
    if not 0 < total <= MAX_TOTAL_MINOR:
        raise FailedPreconditionError(
            "ORDER_TOTAL_NOT_PAYABLE",
            f"the order's total of {total} minor units is not payable: it must be 1 to {MAX_TOTAL_MINOR}",
        )
    return result, total, currencies.pop()


def unknown_products(lines: list[Line], missing: set[str]) -> InvalidArgumentError:
    return InvalidArgumentError(
        [
            FieldViolation(f"lines[{i}].product_id", f"unknown product {x.product_id}")
            for i, x in enumerate(lines)
            if x.product_id in missing
        ]
    )


# --- decisions ---------------------------------------------------------------------------


def place(
    order_id: str,
    customer_id: str,
    lines: tuple[Line, ...],
    total_minor: int,
    currency_code: str,
    idempotency_key: str,
    at: float,
) -> list[Message]:
    placed = ev.OrderPlaced(
        customer_id=customer_id,
        total_minor=total_minor,
        currency_code=currency_code,
        idempotency_key=idempotency_key,
        lines=[
            {
                "product_id": x.product_id,
                "quantity": x.quantity,
                "unit_price_minor": x.unit_price_minor,
            }
            for x in lines
        ],
    )
    return [stamped(placed, at, aggregate_id=order_id, version=1)]


def _next(order: Order, at: float, *events: Message) -> list[Message]:
    return [
        stamped(e, at, aggregate_id=order.order_id, version=order.version + i + 1)
        for i, e in enumerate(events)
    ]


# --- placing: the saga's step has decided, these write the events it implies ----------------


def record_stock_reserved(order: Order, at: float) -> list[Message]:
    return _next(order, at, ev.OrderStockReserved())


def confirm(order: Order, at: float) -> list[Message]:
    """Payment authorised on reserved stock: the order is confirmed."""
    return _next(order, at, ev.OrderPaymentAuthorized(), ev.OrderConfirmed())


def reject(order: Order, reason: str, at: float) -> list[Message]:
    return _next(order, at, ev.OrderRejected(reason=reason))


def record_compensation_retried(order: Order, command_ids: list[str], at: float) -> list[Message]:
    """An operator re-sent the saga's unacknowledged compensations."""
    return _next(order, at, ev.OrderCompensationRetried(command_ids=command_ids))


def record_saga_resolved(
    order: Order, reason: str, abandoned_command_ids: list[str], at: float
) -> list[Message]:
    """An operator closed the saga without its compensations."""
    return _next(
        order,
        at,
        ev.OrderSagaResolved(reason=reason, abandoned_command_ids=abandoned_command_ids),
    )


# --- cancellation: the order's own choreography ---------------------------------------------


def request_cancellation(order: Order, reason: str, at: float) -> list[Message]:
    if order.status is not OrderStatus.CONFIRMED:
        raise FailedPreconditionError(
            "ORDER_NOT_CANCELLABLE",
            f"order {order.order_id} is {order.status.value}; only CONFIRMED orders can be cancelled",
        )
    return _next(
        order, at, ev.OrderCancellationRequested(customer_id=order.customer_id, reason=reason)
    )


def record_stock_released(order: Order, at: float) -> list[Message]:
    """Inventory gave back what a cancelled order held; the second return cancels it."""
    if order.status is not OrderStatus.CANCELLING or order.stock_released:
        return []
    events: list[Message] = [ev.OrderStockReleased()]
    if order.payment_refunded:
        events.append(ev.OrderCancelled())
    return _next(order, at, *events)


def record_payment_refunded(order: Order, amount_minor: int, at: float) -> list[Message]:
    """Payments gave back what a cancelled order held or was charged."""
    if order.status is not OrderStatus.CANCELLING or order.payment_refunded:
        return []
    events: list[Message] = [ev.OrderPaymentRefunded(amount_minor=amount_minor)]
    if order.stock_released:
        events.append(ev.OrderCancelled())
    return _next(order, at, *events)
