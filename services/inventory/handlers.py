"""Reactions to commands (ReserveStock, ReleaseStock, CommitReservation) and, for the
cancellation choreography, to OrderCancellationRequested. Each runs inside the consumer's
transaction and answers with an event staged in the outbox."""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

from google.protobuf.message import Message
from shop.inventory.v1 import commands_pb2, events_pb2, inventory_pb2
from shop.orders.v1 import events_pb2 as order_events_pb2

from runtime import outbox
from runtime.consumer import Subscription, handler_map
from runtime.database import Connection
from runtime.events import stamped
from runtime.ids import now
from runtime.logs import get_logger
from runtime.streams import commands_stream, events_stream
from services.inventory import store
from services.inventory.domain import (
    Reservation,
    ReservationStatus,
    StockLine,
    merge_lines,
    shortfalls,
)

log = get_logger(__name__)


def _lines_pb(lines: tuple[StockLine, ...]) -> list[inventory_pb2.StockLine]:
    return [
        inventory_pb2.StockLine(product_id=line.product_id, quantity=line.quantity)
        for line in lines
    ]


E = TypeVar("E", bound=Message)


def _stamped(event: E, r: Reservation, causation_id: str) -> E:
    return stamped(event, r.update_time, r.order_id, r.version, causation_id=causation_id)


def _answer_current(conn: Connection, r: Reservation, causation_id: str) -> None:
    """A repeated or late ReserveStock is answered with where the reservation stands."""
    if r.status in (ReservationStatus.RESERVED, ReservationStatus.COMMITTED):
        outbox.stage(
            conn, _stamped(events_pb2.StockReserved(lines=_lines_pb(r.lines)), r, causation_id)
        )
    else:
        reason = r.reason or f"reservation is {r.status.value.lower()}"
        outbox.stage(conn, _stamped(events_pb2.StockUnavailable(reason=reason), r, causation_id))


def reserve_stock(conn: Connection, cmd: commands_pb2.ReserveStock) -> None:
    existing = store.get_reservation(conn, cmd.order_id)
    if existing is not None:
        _answer_current(conn, existing, cmd.command_id)
        return
    at = now()
    lines = merge_lines([StockLine(line.product_id, line.quantity) for line in cmd.lines])
    products = store.get_products(conn, [line.product_id for line in lines])
    problems = shortfalls(products, lines)
    if problems:
        rejected = Reservation(
            cmd.order_id, ReservationStatus.REJECTED, lines, "; ".join(problems), 1, at, at
        )
        store.save_reservation(conn, rejected)
        short = [
            line.product_id
            for line in lines
            if line.product_id not in products
            or products[line.product_id].stock_available < line.quantity
        ]
        outbox.stage(
            conn,
            _stamped(
                events_pb2.StockUnavailable(reason=rejected.reason, product_ids=short),
                rejected,
                cmd.command_id,
            ),
        )
        log.info("stock_unavailable", order_id=cmd.order_id, reason=rejected.reason)
        return
    for line in lines:
        store.move_stock(conn, line.product_id, 0, line.quantity, f"reserve {cmd.order_id}", at)
    reserved = Reservation(cmd.order_id, ReservationStatus.RESERVED, lines, "", 1, at, at)
    store.save_reservation(conn, reserved)
    outbox.stage(
        conn, _stamped(events_pb2.StockReserved(lines=_lines_pb(lines)), reserved, cmd.command_id)
    )
    log.info("stock_reserved", order_id=cmd.order_id, lines=len(lines))


def release(conn: Connection, order_id: str, reason: str, causation_id: str) -> None:
    """Returns whatever the order holds; a release with nothing held leaves a RELEASED
    tombstone, so a ReserveStock that arrives later holds nothing."""
    at = now()
    existing = store.get_reservation(conn, order_id)
    returned: tuple[StockLine, ...] = ()
    if existing is None:
        released = Reservation(order_id, ReservationStatus.RELEASED, (), reason, 1, at, at)
    elif existing.status in (ReservationStatus.RESERVED, ReservationStatus.COMMITTED):
        returned = existing.lines
        for line in existing.lines:
            if existing.status is ReservationStatus.RESERVED:
                store.move_stock(
                    conn, line.product_id, 0, -line.quantity, f"release {order_id}", at
                )
            else:
                store.move_stock(conn, line.product_id, line.quantity, 0, f"return {order_id}", at)
        released = replace(
            existing,
            status=ReservationStatus.RELEASED,
            reason=reason,
            version=existing.version + 1,
            update_time=at,
        )
    else:
        released = replace(existing, version=existing.version + 1, update_time=at)
    store.save_reservation(conn, released)
    outbox.stage(
        conn,
        _stamped(
            events_pb2.StockReleased(lines=_lines_pb(returned), reason=reason),
            released,
            causation_id,
        ),
    )
    log.info("stock_released", order_id=order_id, lines=len(returned))


def release_stock(conn: Connection, cmd: commands_pb2.ReleaseStock) -> None:
    release(conn, cmd.order_id, cmd.reason or "released", cmd.command_id)


def commit_reservation(conn: Connection, cmd: commands_pb2.CommitReservation) -> None:
    existing = store.get_reservation(conn, cmd.order_id)
    if existing is None or existing.status not in (
        ReservationStatus.RESERVED,
        ReservationStatus.COMMITTED,
    ):
        state = existing.status.value if existing else "missing"
        log.warning("commit_ignored", order_id=cmd.order_id, reservation=state)
        return
    at = now()
    committed = existing
    if existing.status is ReservationStatus.RESERVED:
        for line in existing.lines:
            store.move_stock(
                conn, line.product_id, -line.quantity, -line.quantity, f"commit {cmd.order_id}", at
            )
        committed = replace(
            existing,
            status=ReservationStatus.COMMITTED,
            version=existing.version + 1,
            update_time=at,
        )
        store.save_reservation(conn, committed)
    outbox.stage(
        conn,
        _stamped(
            events_pb2.ReservationCommitted(lines=_lines_pb(committed.lines)),
            committed,
            cmd.command_id,
        ),
    )


def on_order_cancellation_requested(
    conn: Connection, event: order_events_pb2.OrderCancellationRequested
) -> None:
    release(
        conn,
        event.order_id,
        f"order cancelled: {event.reason}" if event.reason else "order cancelled",
        event.event_id,
    )


def subscriptions() -> list[Subscription]:
    return [
        Subscription(
            stream=commands_stream("inventory"),
            durable="inventory-commands",
            handlers=handler_map(
                (commands_pb2.ReserveStock, reserve_stock),
                (commands_pb2.ReleaseStock, release_stock),
                (commands_pb2.CommitReservation, commit_reservation),
            ),
        ),
        Subscription(
            stream=events_stream("orders"),
            durable="inventory-order-events",
            handlers=handler_map(
                (order_events_pb2.OrderCancellationRequested, on_order_cancellation_requested)
            ),
        ),
    ]
