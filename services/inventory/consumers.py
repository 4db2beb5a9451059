"""What inventory consumes, and which application use case each message runs: nothing else."""

from __future__ import annotations

from shop.inventory.v1 import commands_pb2
from shop.orders.v1 import events_pb2 as order_events_pb2

from runtime.consumer import Subscription, handler_map
from runtime.streams import commands_stream, events_stream
from services.inventory.application import Inventory


def subscriptions(inventory: Inventory) -> list[Subscription]:
    return [
        Subscription(
            stream=commands_stream("inventory"),
            durable="inventory-commands",
            handlers=handler_map(
                (commands_pb2.ReserveStock, inventory.on_reserve_stock),
                (commands_pb2.ReleaseStock, inventory.on_release_stock),
                (commands_pb2.CommitReservation, inventory.on_commit_reservation),
            ),
        ),
        Subscription(
            stream=events_stream("orders"),
            durable="inventory-order-events",
            handlers=handler_map(
                (
                    order_events_pb2.OrderCancellationRequested,
                    inventory.on_order_cancellation_requested,
                )
            ),
        ),
    ]
