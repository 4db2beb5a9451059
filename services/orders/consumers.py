"""What orders consumes: the outcomes inventory and payments publish, each to its application
use case (the place-order saga or the cancellation choreography)."""

from __future__ import annotations

from shop.inventory.v1 import events_pb2 as inventory_ev
from shop.payments.v1 import events_pb2 as payments_ev

from runtime.consumer import Subscription, handler_map
from runtime.streams import events_stream
from services.orders.application import Orders


def subscriptions(app: Orders) -> list[Subscription]:
    return [
        Subscription(
            stream=events_stream("inventory"),
            durable="orders-inventory-events",
            handlers=handler_map(
                (inventory_ev.StockReserved, app.on_stock_reserved),
                (inventory_ev.StockUnavailable, app.on_stock_unavailable),
                (inventory_ev.StockReleased, app.on_stock_released),
            ),
        ),
        Subscription(
            stream=events_stream("payments"),
            durable="orders-payments-events",
            handlers=handler_map(
                (payments_ev.PaymentAuthorized, app.on_payment_authorized),
                (payments_ev.PaymentDeclined, app.on_payment_declined),
                (payments_ev.PaymentVoided, app.on_payment_voided),
                (payments_ev.PaymentRefunded, app.on_payment_refunded),
            ),
        ),
    ]
