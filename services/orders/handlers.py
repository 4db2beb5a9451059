"""What orders consumes: the outcomes inventory and payments publish, fed to the saga (placing)
or to the cancellation choreography."""

from __future__ import annotations

from shop.inventory.v1 import events_pb2 as inventory_ev
from shop.payments.v1 import events_pb2 as payments_ev
from shop.payments.v1 import payments_pb2

from runtime.consumer import Subscription, handler_map
from runtime.database import Connection
from runtime.streams import events_stream
from services.orders.application import Orders


def subscriptions(orders: Orders) -> list[Subscription]:
    def stock_reserved(conn: Connection, e: inventory_ev.StockReserved) -> None:
        orders.stock_reserved(conn, e.order_id)

    def stock_unavailable(conn: Connection, e: inventory_ev.StockUnavailable) -> None:
        orders.stock_unavailable(conn, e.order_id, e.reason)

    def stock_released(conn: Connection, e: inventory_ev.StockReleased) -> None:
        orders.stock_released(conn, e.order_id, e.causation_id)

    def payment_authorized(conn: Connection, e: payments_ev.PaymentAuthorized) -> None:
        orders.payment_authorized(conn, e.order_id)

    def payment_declined(conn: Connection, e: payments_ev.PaymentDeclined) -> None:
        reason = e.message or payments_pb2.DeclineReason.Name(e.reason)
        orders.payment_declined(conn, e.order_id, reason)

    def payment_voided(conn: Connection, e: payments_ev.PaymentVoided) -> None:
        orders.payment_voided(conn, e.order_id)

    def payment_refunded(conn: Connection, e: payments_ev.PaymentRefunded) -> None:
        orders.payment_refunded(conn, e.order_id, e.amount_minor)

    return [
        Subscription(
            stream=events_stream("inventory"),
            durable="orders-inventory-events",
            handlers=handler_map(
                (inventory_ev.StockReserved, stock_reserved),
                (inventory_ev.StockUnavailable, stock_unavailable),
                (inventory_ev.StockReleased, stock_released),
            ),
        ),
        Subscription(
            stream=events_stream("payments"),
            durable="orders-payments-events",
            handlers=handler_map(
                (payments_ev.PaymentAuthorized, payment_authorized),
                (payments_ev.PaymentDeclined, payment_declined),
                (payments_ev.PaymentVoided, payment_voided),
                (payments_ev.PaymentRefunded, payment_refunded),
            ),
        ),
    ]
