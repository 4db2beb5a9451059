"""What every place-order saga must end with, whatever crashed on the way: one terminal state,
an event history with no event twice, and stock and credit that balance to the unit. The chaos
suites check these after killing services or NATS nodes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from shop.inventory.v1 import inventory_pb2
from shop.orders.v1 import orders_pb2

from tests.support.polling import eventually
from tests.support.shop import Shop

CONFIRMED_EVENTS = [
    "order_placed",
    "order_stock_reserved",
    "order_payment_authorized",
    "order_confirmed",
]
TERMINAL_EVENTS = ("order_confirmed", "order_rejected", "order_cancelled")
RELEASE_WAIT_S = 30.0


async def settled_once(shop: Shop, customer: str, order_id: str) -> orders_pb2.Order:
    """The order once terminal, after checking its history: exactly one terminal event, no
    event recorded twice, and a confirmed order's whole saga in order."""
    order = await shop.settled(customer, order_id)
    events = await shop.event_types(customer, order_id)
    twice = [name for name, count in Counter(events).items() if count > 1]
    assert not twice, f"order {order_id} recorded {twice} more than once: {events}"
    assert sum(e in TERMINAL_EVENTS for e in events) == 1, f"order {order_id}: {events}"
    if order.status == orders_pb2.ORDER_STATUS_CONFIRMED:
        assert events == CONFIRMED_EVENTS, f"order {order_id}: {events}"
    return order


async def released(shop: Shop, product: str) -> inventory_pb2.Product:
    """The product once nothing is reserved any more: a confirmed order's CommitReservation,
    or a rejected one's release, may still be on its way when the order is terminal."""
    return await eventually(
        lambda: shop.stock(product),
        lambda stock: stock.stock_reserved == 0,
        RELEASE_WAIT_S,
        f"reservations of {product} committed or released",
    )


def units_sold(orders: Iterable[orders_pb2.Order], product: str) -> int:
    """Units of `product` in the confirmed orders: what its stock must have gone down by."""
    return sum(
        line.quantity
        for order in orders
        if order.status == orders_pb2.ORDER_STATUS_CONFIRMED
        for line in order.lines
        if line.product_id == product
    )


def amount_charged(orders: Iterable[orders_pb2.Order], customer: str) -> int:
    """What the customer's confirmed orders cost: what their available credit went down by."""
    return sum(
        order.total_minor
        for order in orders
        if order.status == orders_pb2.ORDER_STATUS_CONFIRMED and order.customer_id == customer
    )
