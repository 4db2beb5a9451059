"""Orders' use cases, each one transaction: the order's new events, the read models, the saga
state and the outgoing commands and events all commit together, or none of them does."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message

from runtime import outbox
from runtime.database import Connection
from runtime.ids import new_id, now
from runtime.logs import get_logger
from services.orders import domain, saga, store
from services.orders.domain import Line, Order, OrderStatus

log = get_logger(__name__)


@dataclass(frozen=True)
class OrdersConfig:
    snapshot_every: int
    step_timeout_s: float


class Orders:
    def __init__(self, config: OrdersConfig) -> None:
        self.config = config

    def _commit(self, conn: Connection, order: Order | None, events: list[Message]) -> Order:
        state = store.save(conn, order, events, self.config.snapshot_every)
        for event in events:
            outbox.stage(conn, event)
        return state

    def _advance(self, conn: Connection, order: Order, transition: saga.Transition) -> Order:
        """Saves one saga step whole: the order's events, the saga state, the commands."""
        order = self._commit(conn, order, transition.events)
        store.save_saga(conn, transition.saga)
        for command in transition.commands:
            outbox.stage(conn, command)
        if transition.events and order.status in (OrderStatus.CONFIRMED, OrderStatus.REJECTED):
            log.info(
                "order_" + order.status.value.lower(),
                order_id=order.order_id,
                reason=order.rejection_reason,
            )
        return order

    # --- commands from the API ----------------------------------------------------------------

    def place(
        self,
        conn: Connection,
        customer_id: str,
        lines: tuple[Line, ...],
        total_minor: int,
        currency_code: str,
        idempotency_key: str,
    ) -> Order:
        if idempotency_key:
            existing = store.order_for_key(conn, customer_id, idempotency_key)
            if existing is not None:
                found = store.load(conn, existing)
                assert found is not None
                return found
        at = now()
        order_id = new_id("ord")
        order = self._commit(
            conn,
            None,
            domain.place(
                order_id, customer_id, lines, total_minor, currency_code, idempotency_key, at
            ),
        )
        transition = saga.start(order, at, self.config.step_timeout_s)
        store.save_saga(conn, transition.saga)
        for command in transition.commands:
            outbox.stage(conn, command)
        log.info("order_placed", order_id=order_id, total_minor=total_minor)
        return order

    def cancel(self, conn: Connection, order: Order, reason: str) -> Order:
        return self._commit(conn, order, domain.request_cancellation(order, reason, now()))

    # --- facts from inventory and payments -------------------------------------------------------

    def _load(self, conn: Connection, order_id: str) -> tuple[Order, saga.Saga] | None:
        order = store.load(conn, order_id)
        current = store.get_saga(conn, order_id)
        if order is None or current is None:
            log.info("event_for_unknown_order_ignored", order_id=order_id)
            return None
        return order, current

    def stock_reserved(self, conn: Connection, order_id: str) -> None:
        if loaded := self._load(conn, order_id):
            order, current = loaded
            self._advance(
                conn,
                order,
                saga.on_stock_reserved(current, order, now(), self.config.step_timeout_s),
            )

    def stock_unavailable(self, conn: Connection, order_id: str, reason: str) -> None:
        if loaded := self._load(conn, order_id):
            order, current = loaded
            self._advance(conn, order, saga.on_stock_unavailable(current, order, reason, now()))

    def stock_released(self, conn: Connection, order_id: str, causation_id: str) -> None:
        """Stock comes back for one of two requests, told apart by what the fact answers: the
        saga's own ReleaseStock (a compensation) or the order's cancellation."""
        if loaded := self._load(conn, order_id):
            order, current = loaded
            if saga.answers_release(current, causation_id):
                self._advance(conn, order, saga.on_stock_released(current, order, now()))
            else:
                self._commit(conn, order, domain.record_stock_released(order, now()))

    def payment_authorized(self, conn: Connection, order_id: str) -> None:
        if loaded := self._load(conn, order_id):
            order, current = loaded
            self._advance(conn, order, saga.on_payment_authorized(current, order, now()))

    def payment_declined(self, conn: Connection, order_id: str, reason: str) -> None:
        if loaded := self._load(conn, order_id):
            order, current = loaded
            self._advance(
                conn,
                order,
                saga.on_payment_declined(current, reason, now(), self.config.step_timeout_s),
            )

    def payment_voided(self, conn: Connection, order_id: str) -> None:
        if loaded := self._load(conn, order_id):
            order, current = loaded
            self._advance(conn, order, saga.on_payment_voided(current, order, now()))

    def payment_refunded(self, conn: Connection, order_id: str, amount_minor: int) -> None:
        if loaded := self._load(conn, order_id):
            order, _ = loaded
            self._commit(conn, order, domain.record_payment_refunded(order, amount_minor, now()))

    def time_out(self, conn: Connection, order_id: str) -> None:
        """A step's deadline passed; the saga re-checks it inside this transaction."""
        if loaded := self._load(conn, order_id):
            order, current = loaded
            transition = saga.on_timeout(current, order, now(), self.config.step_timeout_s)
            if transition.saga != current:
                log.warning("saga_step_timed_out", order_id=order_id, step=current.step.value)
            self._advance(conn, order, transition)
