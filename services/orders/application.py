"""Orders' use cases, each whole and each one transaction: the order's new events, the read
models, the saga state and the outgoing commands and events all commit together, or none does.

API use cases are async methods that own their transaction; message use cases (`on_<fact>`) run
inside the consumer's inbox transaction (runtime/consumer.py). Placing an order is the saga's
state machine (saga.py): each fact is fed to it once and its Transition is saved as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from shop.inventory.v1 import events_pb2 as inventory_ev
from shop.payments.v1 import events_pb2 as payments_ev
from shop.payments.v1 import payments_pb2

from runtime import outbox, paging, tracing
from runtime.database import Connection, Database
from runtime.errors import FieldViolation, InvalidArgumentError, NotFoundError
from runtime.ids import new_id, now
from runtime.logs import get_logger
from runtime.metrics import Reading, gauge
from runtime.validation import Violations, check_timestamp
from services.orders import domain, saga, store
from services.orders.clients import Pricing, UnknownProductsError
from services.orders.domain import Line, Order, OrderStatus

log = get_logger(__name__)

ORDER_POSITION = (float, str)
"""A ListOrders page token holds (create_time, order_id) of the page's last order."""
SAGA_POSITION = (str,)
"""A ListSagas page token holds the order id of the page's last saga."""


@dataclass(frozen=True)
class OrdersConfig:
    snapshot_every: int
    step_timeout_s: float
    cancellation_alert_s: float = 120.0


@dataclass(frozen=True)
class OrderPage:
    orders: list[Order]
    next_page_token: str


@dataclass(frozen=True)
class SagaPage:
    sagas: list[saga.Saga]
    next_page_token: str


def _owned(order: Order | None, customer_id: str, order_id: str) -> Order:
    if order is None or order.customer_id != customer_id:
        raise NotFoundError("order", order_id)  # another customer's order does not exist for you
    return order


class Orders:
    def __init__(
        self,
        db: Database,
        pricing: Pricing,
        page_tokens: paging.PageTokens,
        config: OrdersConfig,
    ) -> None:
        self._db = db
        self._pricing = pricing
        self._page_tokens = page_tokens
        self.config = config

    # --- API use cases -------------------------------------------------------------------------

    async def place_order(self, customer_id: str, lines: list[Line], idempotency_key: str) -> Order:
        """Prices the lines with inventory, then in one transaction: the idempotency key looked
        up (a repeat returns the order first placed with it), or `OrderPlaced` appended, the saga
        started and `ReserveStock` staged."""
        domain.validate_new_order(lines)
        try:
            prices = await self._pricing.prices([x.product_id for x in lines])
        except UnknownProductsError as error:
            raise domain.unknown_products(lines, error.product_ids) from error
        priced_lines, total, currency = domain.priced(lines, prices)

        def place(conn: Connection) -> Order:
            if idempotency_key:
                existing = store.order_for_key(conn, customer_id, idempotency_key)
                if existing is not None:
                    return _owned(store.load(conn, existing), customer_id, existing)
            at = now()
            order_id = new_id("ord")
            placed = domain.place(
                order_id, customer_id, priced_lines, total, currency, idempotency_key, at
            )
            tracing.tag_order(order_id)
            with tracing.step("saga start", order_id):
                order = self._save(conn, None, placed)
                self._save_saga(conn, saga.start(order, at, self.config.step_timeout_s))
            log.info("order_placed", order_id=order.order_id, total_minor=total)
            return order

        return await self._db.write(place)

    async def get_order(
        self, customer_id: str, order_id: str, as_of_version: int, as_of_time: Timestamp | None
    ) -> Order:
        """The order now, or as of a version or a time (temporal queries). Now is its read
        model, written in the same transaction as its events so never behind them: one row,
        where the event store is a snapshot lookup and a replay of the events after it."""
        if as_of_time is not None:
            v = Violations()
            check_timestamp(v, as_of_time, "as_of_time")
            v.raise_if_any()
        at = as_of_time.ToNanoseconds() / 1e9 if as_of_time is not None else None

        def get(conn: Connection) -> Order:
            current = _owned(store.view(conn, order_id), customer_id, order_id)
            if as_of_version < 0 or as_of_version > current.version:
                raise InvalidArgumentError(
                    [
                        FieldViolation(
                            "as_of_version",
                            f"must be 1 to {current.version}, the order's current version",
                        )
                    ]
                )
            if not as_of_version and at is None:
                return current
            past = store.load(conn, order_id, as_of_version or None, at)
            if past is None:
                raise NotFoundError("order as of that time", order_id)
            return past

        return await self._db.read(get)

    async def list_orders(self, customer_id: str, page_size: int, page_token: str) -> OrderPage:
        size = paging.page_size(page_size)
        position = self._page_tokens.decode(page_token, ORDER_POSITION)
        after = (float(position[0]), str(position[1])) if position else None
        page = await self._db.read(
            lambda conn: store.list_orders(conn, customer_id, after, size + 1)
        )
        token = ""
        if len(page) > size:
            last = page[size - 1]
            token = self._page_tokens.encode((last.create_time, last.order_id))
        return OrderPage(page[:size], token)

    async def cancel_order(self, customer_id: str, order_id: str, reason: str) -> Order:
        """Starts the cancellation choreography: inventory and payments react on their own."""

        def cancel(conn: Connection) -> Order:
            order = _owned(store.load(conn, order_id), customer_id, order_id)
            return self._save(conn, order, domain.request_cancellation(order, reason, now()))

        return await self._db.write(cancel)

    async def list_order_events(self, customer_id: str, order_id: str) -> list[Message]:
        def history(conn: Connection) -> list[Message]:
            _owned(store.load(conn, order_id), customer_id, order_id)
            return store.history(conn, order_id)

        return await self._db.read(history)

    async def rebuild_read_models(self) -> tuple[int, int]:
        """(orders rebuilt, events replayed)."""
        return await self._db.write(store.rebuild_read_models)

    # --- operators (OrdersAdminService) --------------------------------------------------------

    async def list_sagas(
        self, step: saga.SagaStep | None, stuck_for_s: float, page_size: int, page_token: str
    ) -> SagaPage:
        """Sagas in a step (None: every open one), in it for longer than `stuck_for_s` (0: any)."""
        size = paging.page_size(page_size)
        position = self._page_tokens.decode(page_token, SAGA_POSITION)
        after = str(position[0]) if position else ""
        before = now() - stuck_for_s if stuck_for_s > 0 else None
        page = await self._db.read(
            lambda conn: store.list_sagas(conn, step, before, after, size + 1)
        )
        token = self._page_tokens.encode((page[size - 1].order_id,)) if len(page) > size else ""
        return SagaPage(page[:size], token)

    async def get_saga(self, order_id: str) -> saga.Saga:
        found = await self._db.read(lambda conn: store.get_saga(conn, order_id))
        if found is None:
            raise NotFoundError("saga", order_id)
        return found

    async def retry_compensation(self, order_id: str) -> saga.Saga:
        """Re-sends what a COMPENSATION_PENDING saga waits on; recorded on the order."""

        def retry(conn: Connection) -> saga.Saga:
            order, current = self._operated(conn, order_id)
            transition = saga.retry_compensation(current, order, now())
            self._advance(conn, order, transition)
            log.warning(
                "saga_compensation_retried",
                order_id=order_id,
                command_ids=[c.command_id for c in saga.pending_commands(transition.saga)],
            )
            return transition.saga

        return await self._db.write(retry)

    async def resolve_saga(self, order_id: str, reason: str) -> saga.Saga:
        """Closes a COMPENSATION_PENDING saga by an operator's decision; recorded on the order."""

        def resolve(conn: Connection) -> saga.Saga:
            order, current = self._operated(conn, order_id)
            transition = saga.resolve(current, order, reason, now())
            self._advance(conn, order, transition)
            log.warning("saga_resolved", order_id=order_id, reason=reason)
            return transition.saga

        return await self._db.write(resolve)

    def _operated(self, conn: Connection, order_id: str) -> tuple[Order, saga.Saga]:
        order = store.load(conn, order_id)
        current = store.get_saga(conn, order_id)
        if order is None or current is None:
            raise NotFoundError("saga", order_id)
        return order, current

    async def saga_readings(self) -> list[Reading]:
        """The saga's metrics, read at each scrape: sagas by step, compensations pending."""
        by_step, pending = await self._db.read(store.saga_counts)
        return [
            *(
                gauge("concord_sagas", "Place-order sagas by step", n, step=s)
                for s, n in by_step.items()
            ),
            *(
                gauge(
                    "concord_compensations_pending",
                    "Compensations sent by open sagas and not yet acknowledged, by kind",
                    n,
                    compensation=kind,
                )
                for kind, n in pending.items()
            ),
        ]

    # --- background use cases (workers.py) -----------------------------------------------------

    async def time_out_overdue_steps(self) -> int:
        """Feeds every saga step past its deadline its timeout, each in its own transaction;
        returns how many there were."""
        overdue = await self._db.read(lambda conn: store.overdue_sagas(conn, now()))
        for current in overdue:
            await self._db.write(partial(self.time_out, order_id=current.order_id))
        return len(overdue)

    async def overdue_cancellations(self, cancelling_for_s: float) -> list[Order]:
        """Orders CANCELLING for longer than `cancelling_for_s`: the choreography has no
        coordinator to time them out, so an operator must look."""
        before = now() - cancelling_for_s
        return await self._db.read(lambda conn: store.stuck_cancellations(conn, before))

    def time_out(self, conn: Connection, order_id: str) -> None:
        """A step's deadline passed; the saga re-checks it inside this transaction."""
        if loaded := self._placing(conn, order_id):
            order, current = loaded
            transition = saga.on_timeout(current, order, now(), self.config.step_timeout_s)
            if transition.saga != current:
                log.warning("saga_step_timed_out", order_id=order_id, step=current.step.value)
            pending = saga.SagaStep.COMPENSATION_PENDING
            if transition.saga.step is pending and current.step is not pending:
                log.error(
                    "saga_compensation_pending",
                    order_id=order_id,
                    command_ids=[c.command_id for c in saga.pending_commands(transition.saga)],
                )
            self._advance(conn, order, transition)

    # --- facts from inventory and payments: the place-order saga ------------------------------

    def on_stock_reserved(self, conn: Connection, msg: inventory_ev.StockReserved) -> None:
        if loaded := self._placing(conn, msg.order_id):
            order, current = loaded
            self._advance(
                conn,
                order,
                saga.on_stock_reserved(current, order, now(), self.config.step_timeout_s),
            )

    def on_stock_unavailable(self, conn: Connection, msg: inventory_ev.StockUnavailable) -> None:
        if loaded := self._placing(conn, msg.order_id):
            order, current = loaded
            self._advance(conn, order, saga.on_stock_unavailable(current, order, msg.reason, now()))

    def on_payment_authorized(self, conn: Connection, msg: payments_ev.PaymentAuthorized) -> None:
        if loaded := self._placing(conn, msg.order_id):
            order, current = loaded
            self._advance(conn, order, saga.on_payment_authorized(current, order, now()))

    def on_payment_declined(self, conn: Connection, msg: payments_ev.PaymentDeclined) -> None:
        reason = msg.message or payments_pb2.DeclineReason.Name(msg.reason)
        if loaded := self._placing(conn, msg.order_id):
            order, current = loaded
            self._advance(
                conn,
                order,
                saga.on_payment_declined(current, reason, now(), self.config.step_timeout_s),
            )

    def on_payment_voided(self, conn: Connection, msg: payments_ev.PaymentVoided) -> None:
        if loaded := self._placing(conn, msg.order_id):
            order, current = loaded
            self._advance(conn, order, saga.on_payment_voided(current, order, now()))

    def on_stock_released(self, conn: Connection, msg: inventory_ev.StockReleased) -> None:
        """Stock comes back for one of two requests, told apart by what the fact answers: the
        saga's own ReleaseStock (a compensation) or the order's cancellation."""
        if loaded := self._placing(conn, msg.order_id):
            order, current = loaded
            if saga.answers_release(current, msg.causation_id):
                self._advance(conn, order, saga.on_stock_released(current, order, now()))
            else:
                self._cancellation_stock_released(conn, order)

    # --- facts from inventory and payments: the cancellation choreography --------------------

    def _cancellation_stock_released(self, conn: Connection, order: Order) -> None:
        self._save(conn, order, domain.record_stock_released(order, now()))

    def on_payment_refunded(self, conn: Connection, msg: payments_ev.PaymentRefunded) -> None:
        order = store.load(conn, msg.order_id)
        if order is None:
            log.info("event_for_unknown_order_ignored", order_id=msg.order_id)
            return
        self._save(conn, order, domain.record_payment_refunded(order, msg.amount_minor, now()))

    # --- saving -------------------------------------------------------------------------------

    def _placing(self, conn: Connection, order_id: str) -> tuple[Order, saga.Saga] | None:
        order = store.load(conn, order_id)
        current = store.get_saga(conn, order_id)
        if order is None or current is None:
            log.info("event_for_unknown_order_ignored", order_id=order_id)
            return None
        return order, current

    def _save(self, conn: Connection, order: Order | None, events: list[Message]) -> Order:
        """The order's new events, its read models and its outbox rows."""
        state = store.save(conn, order, events, self.config.snapshot_every)
        for event in events:
            outbox.stage(conn, event)
        return state

    def _save_saga(self, conn: Connection, transition: saga.Transition) -> None:
        store.save_saga(conn, transition.saga)
        for command in transition.commands:
            outbox.stage(conn, command)

    def _advance(self, conn: Connection, order: Order, transition: saga.Transition) -> None:
        """Saves one saga step whole: the order's events, the saga state, the commands."""
        with tracing.step(
            f"saga {transition.saga.step.value.lower()}",
            order.order_id,
            **{"saga.step": transition.saga.step.value, "order.status": order.status.value},
        ):
            order = self._save(conn, order, transition.events)
            self._save_saga(conn, transition)
        if transition.events and order.status in (OrderStatus.CONFIRMED, OrderStatus.REJECTED):
            log.info(
                "order_" + order.status.value.lower(),
                order_id=order.order_id,
                reason=order.rejection_reason,
            )
