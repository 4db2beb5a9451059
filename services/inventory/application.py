"""Inventory's use cases, each one whole: load, decide (domain), save with its outbox rows.

API use cases are `async` and own their transaction; message use cases (`on_<message>`) run
inside the consumer's inbox transaction, so a redelivered message never reaches them. A repeated
ReserveStock for an order (a new command id) is answered with where the reservation stands and
never holds twice: that lookup happens once, in `on_reserve_stock`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

from google.protobuf.message import Message
from shop.inventory.v1 import commands_pb2, events_pb2, inventory_pb2
from shop.orders.v1 import events_pb2 as order_events_pb2

from runtime import outbox, paging
from runtime.caller import Caller, Role
from runtime.database import Connection, Database
from runtime.errors import AlreadyExistsError, NotFoundError
from runtime.events import stamped
from runtime.ids import new_id, now
from runtime.logs import get_logger
from services.inventory import store
from services.inventory.domain import (
    NewProduct,
    Product,
    Reservation,
    ReservationStatus,
    StockLine,
    merge_lines,
    shortfalls,
)

log = get_logger(__name__)

PRODUCT_POSITION = (str,)
"""A ListProducts page token holds the product_id of the page's last product."""

E = TypeVar("E", bound=Message)


def _lines_pb(lines: tuple[StockLine, ...]) -> list[inventory_pb2.StockLine]:
    return [
        inventory_pb2.StockLine(product_id=line.product_id, quantity=line.quantity)
        for line in lines
    ]


def _stamped(event: E, r: Reservation, causation_id: str) -> E:
    return stamped(event, r.update_time, r.order_id, r.version, causation_id=causation_id)


class Inventory:
    def __init__(self, db: Database, page_tokens: paging.PageTokens) -> None:
        self._db = db
        self._page_tokens = page_tokens

    # --- the catalogue (API) ------------------------------------------------------------------

    async def create_product(self, caller: Caller, new: NewProduct) -> Product:
        caller.require_role(Role.ADMIN)  # the catalogue is the shop's, not a customer's

        def create(conn: Connection) -> Product:
            if store.sku_exists(conn, new.sku):
                raise AlreadyExistsError("product with sku", new.sku)
            at = now()
            product = Product(
                product_id=new_id("prd"),
                sku=new.sku,
                name=new.name,
                unit_price_minor=new.unit_price_minor,
                currency_code=new.currency_code,
                stock_on_hand=new.initial_stock,
                stock_reserved=0,
                create_time=at,
                update_time=at,
                version=1,
            )
            store.insert_product(conn, product)
            created = events_pb2.ProductCreated(
                sku=product.sku,
                name=product.name,
                unit_price_minor=product.unit_price_minor,
                currency_code=product.currency_code,
                stock_on_hand=product.stock_on_hand,
            )
            outbox.stage(conn, stamped(created, at, product.product_id, product.version))
            return product

        return await self._db.write(create)

    async def adjust_stock(
        self, caller: Caller, product_id: str, delta: int, reason: str
    ) -> Product:
        caller.require_role(Role.ADMIN)

        def adjust(conn: Connection) -> Product:
            product = store.get_product(conn, product_id)
            if product is None:
                raise NotFoundError("product", product_id)
            at = now()
            product.adjusted(delta, at)  # raises when it would undercut reservations
            store.move_stock(conn, product_id, delta, 0, reason, at)
            adjusted = store.get_product(conn, product_id) or product
            event = events_pb2.StockAdjusted(
                delta=delta, reason=reason, stock_on_hand=adjusted.stock_on_hand
            )
            outbox.stage(conn, stamped(event, at, product_id, adjusted.version))
            return adjusted

        return await self._db.write(adjust)

    async def get_product(self, product_id: str) -> Product:
        product = await self._db.read(lambda conn: store.get_product(conn, product_id))
        if product is None:
            raise NotFoundError("product", product_id)
        return product

    async def batch_get_products(
        self, product_ids: list[str], allow_missing: bool
    ) -> tuple[list[Product], list[str]]:
        """The products found, in the order asked, and the ids that are not."""
        found = await self._db.read(lambda conn: store.get_products(conn, sorted(set(product_ids))))
        missing = [pid for pid in product_ids if pid not in found]
        if missing and not allow_missing:
            raise NotFoundError("products", ", ".join(missing))
        return [found[pid] for pid in product_ids if pid in found], missing

    async def list_products(self, page_size: int, page_token: str) -> tuple[list[Product], str]:
        """One page of products by id, and the token of the next page ("" after the last)."""
        size = paging.page_size(page_size)
        position = self._page_tokens.decode(page_token, PRODUCT_POSITION)
        after = str(position[0]) if position else None
        page = await self._db.read(lambda conn: store.list_products(conn, after, size + 1))
        token = self._page_tokens.encode((page[size - 1].product_id,)) if len(page) > size else ""
        return page[:size], token

    async def get_reservation(self, caller: Caller, order_id: str) -> Reservation:
        # Inventory cannot tell whose order a reservation serves, so customers (who see their
        # order's status in orders) may not read reservations; admins and internal callers may.
        caller.require_role(Role.ADMIN)
        reservation = await self._db.read(lambda conn: store.get_reservation(conn, order_id))
        if reservation is None:
            raise NotFoundError("reservation", order_id)
        return reservation

    # --- reservations (commands from the saga, the cancellation choreography) -----------------

    def on_reserve_stock(self, conn: Connection, cmd: commands_pb2.ReserveStock) -> None:
        """Holds every line or none, and answers StockReserved or StockUnavailable."""
        existing = store.get_reservation(conn, cmd.order_id)
        if existing is not None:
            self._answer_current(conn, existing, cmd.command_id)
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
            unavailable = events_pb2.StockUnavailable(reason=rejected.reason, product_ids=short)
            outbox.stage(conn, _stamped(unavailable, rejected, cmd.command_id))
            log.info("stock_unavailable", order_id=cmd.order_id, reason=rejected.reason)
            return
        for line in lines:
            store.move_stock(conn, line.product_id, 0, line.quantity, f"reserve {cmd.order_id}", at)
        reserved = Reservation(cmd.order_id, ReservationStatus.RESERVED, lines, "", 1, at, at)
        store.save_reservation(conn, reserved)
        outbox.stage(
            conn,
            _stamped(events_pb2.StockReserved(lines=_lines_pb(lines)), reserved, cmd.command_id),
        )
        log.info("stock_reserved", order_id=cmd.order_id, lines=len(lines))

    def _answer_current(self, conn: Connection, r: Reservation, causation_id: str) -> None:
        """A repeated or late ReserveStock is answered with where the reservation stands."""
        if r.status in (ReservationStatus.RESERVED, ReservationStatus.COMMITTED):
            event: Message = events_pb2.StockReserved(lines=_lines_pb(r.lines))
        else:
            reason = r.reason or f"reservation is {r.status.value.lower()}"
            event = events_pb2.StockUnavailable(reason=reason)
        outbox.stage(conn, _stamped(event, r, causation_id))

    def on_release_stock(self, conn: Connection, cmd: commands_pb2.ReleaseStock) -> None:
        self._release(conn, cmd.order_id, cmd.reason or "released", cmd.command_id)

    def on_order_cancellation_requested(
        self, conn: Connection, event: order_events_pb2.OrderCancellationRequested
    ) -> None:
        reason = f"order cancelled: {event.reason}" if event.reason else "order cancelled"
        self._release(conn, event.order_id, reason, event.event_id)

    def _release(self, conn: Connection, order_id: str, reason: str, causation_id: str) -> None:
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
                    store.move_stock(
                        conn, line.product_id, line.quantity, 0, f"return {order_id}", at
                    )
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
        event = events_pb2.StockReleased(lines=_lines_pb(returned), reason=reason)
        outbox.stage(conn, _stamped(event, released, causation_id))
        log.info("stock_released", order_id=order_id, lines=len(returned))

    def on_commit_reservation(self, conn: Connection, cmd: commands_pb2.CommitReservation) -> None:
        """Takes reserved stock off the shelf; a repeat answers again and moves nothing."""
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
                    conn,
                    line.product_id,
                    -line.quantity,
                    -line.quantity,
                    f"commit {cmd.order_id}",
                    at,
                )
            committed = replace(
                existing,
                status=ReservationStatus.COMMITTED,
                version=existing.version + 1,
                update_time=at,
            )
            store.save_reservation(conn, committed)
        event = events_pb2.ReservationCommitted(lines=_lines_pb(committed.lines))
        outbox.stage(conn, _stamped(event, committed, cmd.command_id))
