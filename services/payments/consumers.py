"""What payments consumes, and which application use case each message runs: nothing else."""

from __future__ import annotations

from shop.orders.v1 import events_pb2 as order_events_pb2
from shop.payments.v1 import commands_pb2

from runtime.consumer import Subscription, handler_map
from runtime.streams import commands_stream, events_stream
from services.payments.application import Payments


def subscriptions(payments: Payments) -> list[Subscription]:
    return [
        Subscription(
            stream=commands_stream("payments"),
            durable="payments-commands",
            handlers=handler_map(
                (commands_pb2.AuthorizePayment, payments.on_authorize_payment),
                (commands_pb2.VoidPayment, payments.on_void_payment),
                (commands_pb2.CapturePayment, payments.on_capture_payment),
            ),
        ),
        Subscription(
            stream=events_stream("orders"),
            durable="payments-order-events",
            handlers=handler_map(
                (
                    order_events_pb2.OrderCancellationRequested,
                    payments.on_order_cancellation_requested,
                )
            ),
        ),
    ]
