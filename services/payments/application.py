"""Payments' use cases, each one whole: load, decide (domain), save with its outbox rows.

API use cases are `async` and own their transaction; message use cases (`on_<message>`) run
inside the consumer's inbox transaction, so a redelivered message never reaches them. One
payment per order: a repeated AuthorizePayment (a new command id) is answered with where the
payment stands and never holds twice; that lookup happens once, in `on_authorize_payment`.

Authorising holds the credit and leaves the payment PENDING; `settle_authorisation` (run by the
worker) asks the provider outside any transaction and records its answer in another. A crash in
between leaves the payment PENDING and it is asked again: the provider is idempotent by key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial

from google.protobuf.message import Message
from shop.orders.v1 import events_pb2 as order_events_pb2
from shop.payments.v1 import commands_pb2, events_pb2, payments_pb2

from runtime import outbox, tracing
from runtime.caller import Caller, Role
from runtime.database import Connection, Database
from runtime.errors import AlreadyExistsError, DependencyUnavailableError, NotFoundError
from runtime.events import stamped
from runtime.ids import now
from runtime.logs import get_logger
from services.payments import store
from services.payments.clients import PaymentProvider, ProviderAnswer
from services.payments.domain import (
    Account,
    DeclineReason,
    Payment,
    PaymentStatus,
    authorisation_decline,
)

log = get_logger(__name__)


def _stage_outcome(conn: Connection, p: Payment, causation_id: str) -> None:
    """Answers with where the payment stands: the reply to a first or a repeated command.
    A PENDING payment has no answer yet: settling it with the provider sends it."""
    if p.status is PaymentStatus.PENDING:
        return
    if p.status is PaymentStatus.DECLINED:
        reason = f"DECLINE_REASON_{p.decline_reason.value}" if p.decline_reason else None
        event: Message = events_pb2.PaymentDeclined(reason=reason, message=p.decline_message)
    elif p.status is PaymentStatus.VOIDED:
        event = events_pb2.PaymentDeclined(
            reason=payments_pb2.DECLINE_REASON_UNSPECIFIED,
            message="payment was voided before it was authorised",
        )
    else:
        event = events_pb2.PaymentAuthorized(
            customer_id=p.customer_id, amount_minor=p.amount_minor, currency_code=p.currency_code
        )
    outbox.stage(
        conn, stamped(event, p.update_time, p.order_id, p.version, causation_id=causation_id)
    )


class Payments:
    def __init__(self, db: Database, provider: PaymentProvider) -> None:
        self._db = db
        self._provider = provider

    def after_write(self, callback: Callable[[], None]) -> None:
        """Called after each commit that left the provider work (a PENDING payment, a void it
        must take): the worker wakes then, not after every write."""
        self._db.after_write(callback, store.PROVIDER_WORK)

    # --- accounts and payments (API) ----------------------------------------------------------

    async def open_account(
        self, caller: Caller, customer_id: str, credit_limit_minor: int, currency_code: str
    ) -> Account:
        caller.require_role(Role.ADMIN)  # opening an account grants credit

        def open_account(conn: Connection) -> Account:
            if store.get_account(conn, customer_id) is not None:
                raise AlreadyExistsError("credit account", customer_id)
            at = now()
            account = Account(
                customer_id=customer_id,
                credit_limit_minor=credit_limit_minor,
                available_minor=credit_limit_minor,
                currency_code=currency_code,
                create_time=at,
                update_time=at,
            )
            store.insert_account(conn, account)
            return account

        return await self._db.write(open_account)

    async def get_account(self, caller: Caller, customer_id: str) -> Account:
        if not caller.may_read_customer(customer_id):
            raise NotFoundError("credit account", customer_id)
        account = await self._db.read(lambda conn: store.get_account(conn, customer_id))
        if account is None:
            raise NotFoundError("credit account", customer_id)
        return account

    async def get_payment(self, caller: Caller, order_id: str) -> Payment:
        payment = await self._db.read(lambda conn: store.get_payment(conn, order_id))
        if (
            payment is None
            or not payment.customer_id
            or not caller.may_read_customer(payment.customer_id)
        ):
            raise NotFoundError("payment", order_id)
        return payment

    # --- commands from the saga, the cancellation choreography --------------------------------

    def on_authorize_payment(self, conn: Connection, cmd: commands_pb2.AuthorizePayment) -> None:
        existing = store.get_payment(conn, cmd.order_id)
        if existing is not None:
            _stage_outcome(conn, existing, cmd.command_id)
            return
        at = now()
        account = store.get_account(conn, cmd.customer_id)
        decline = authorisation_decline(account, cmd.amount_minor, cmd.currency_code)
        payment = Payment(
            order_id=cmd.order_id,
            customer_id=cmd.customer_id,
            amount_minor=cmd.amount_minor,
            currency_code=cmd.currency_code,
            status=PaymentStatus.DECLINED if decline else PaymentStatus.PENDING,
            decline_reason=decline.reason if decline else None,
            decline_message=decline.message if decline else "",
            version=1,
            create_time=at,
            update_time=at,
        )
        if decline is None:
            store.change_available(conn, cmd.customer_id, -cmd.amount_minor, at)
        store.save_payment(conn, payment)
        if payment.status is PaymentStatus.PENDING and (
            traceparent := tracing.current_traceparent()
        ):
            store.save_traceparent(conn, payment.order_id, traceparent)
        _stage_outcome(conn, payment, cmd.command_id)
        log.info(
            "payment_" + payment.status.value.lower(),
            order_id=cmd.order_id,
            amount_minor=cmd.amount_minor,
        )

    def on_void_payment(self, conn: Connection, cmd: commands_pb2.VoidPayment) -> None:
        """Returns an authorisation's hold; with nothing authorised, leaves a VOIDED tombstone
        so a late AuthorizePayment for the order holds nothing."""
        at = now()
        existing = store.get_payment(conn, cmd.order_id)
        returned = 0
        if existing is None:
            voided = Payment(
                cmd.order_id, "", 0, "", PaymentStatus.VOIDED, None, cmd.reason, 1, at, at
            )
        elif existing.status in (PaymentStatus.AUTHORIZED, PaymentStatus.PENDING):
            returned = existing.amount_minor
            store.change_available(conn, existing.customer_id, returned, at)
            store.add_pending_void(conn, cmd.order_id, at)
            voided = existing.moved_to(PaymentStatus.VOIDED, at)
        else:
            voided = existing.moved_to(existing.status, at)
        store.save_payment(conn, voided)
        event = events_pb2.PaymentVoided(amount_minor=returned, reason=cmd.reason)
        outbox.stage(
            conn, stamped(event, at, cmd.order_id, voided.version, causation_id=cmd.command_id)
        )

    def on_capture_payment(self, conn: Connection, cmd: commands_pb2.CapturePayment) -> None:
        existing = store.get_payment(conn, cmd.order_id)
        if existing is None or existing.status not in (
            PaymentStatus.AUTHORIZED,
            PaymentStatus.CAPTURED,
        ):
            log.warning(
                "capture_ignored",
                order_id=cmd.order_id,
                payment=existing.status.value if existing else "missing",
            )
            return
        at = now()
        captured = (
            existing
            if existing.status is PaymentStatus.CAPTURED
            else existing.moved_to(PaymentStatus.CAPTURED, at)
        )
        store.save_payment(conn, captured)
        event = events_pb2.PaymentCaptured(amount_minor=captured.amount_minor)
        outbox.stage(
            conn, stamped(event, at, cmd.order_id, captured.version, causation_id=cmd.command_id)
        )

    def on_order_cancellation_requested(
        self, conn: Connection, event: order_events_pb2.OrderCancellationRequested
    ) -> None:
        """Gives back whatever the order holds or was charged, and says how much."""
        at = now()
        existing = store.get_payment(conn, event.order_id)
        refunded = 0
        version = 1
        if existing is not None:
            version = existing.version
            if existing.holds_credit:
                refunded = existing.amount_minor
                store.change_available(conn, existing.customer_id, refunded, at)
                if existing.status is not PaymentStatus.CAPTURED:
                    store.add_pending_void(conn, event.order_id, at)
                existing = existing.moved_to(PaymentStatus.REFUNDED, at)
                store.save_payment(conn, existing)
                version = existing.version
        outbox.stage(
            conn,
            stamped(
                events_pb2.PaymentRefunded(amount_minor=refunded),
                at,
                aggregate_id=event.order_id,
                version=version,
                causation_id=event.event_id,
            ),
        )
        log.info("payment_refunded", order_id=event.order_id, amount_minor=refunded)

    # --- the provider (run by workers.AuthorizationWorker) ------------------------------------

    async def pending_authorisations(self) -> list[Payment]:
        return await self._db.read(store.pending_payments)

    async def settle_authorisation(self, p: Payment) -> None:
        """Asks the provider about a PENDING payment, then records its answer, in the trace the
        authorisation was asked for in."""
        traceparent = await self._db.read(lambda conn: store.traceparent_of(conn, p.order_id))
        with tracing.resumed(traceparent, "settle authorisation", p.order_id):
            await self._settle(p)

    async def _settle(self, p: Payment) -> None:
        try:
            answer = await self._provider.authorize(
                p.order_id, p.customer_id, p.amount_minor, p.currency_code
            )
        except Exception as error:  # the provider refused the request itself: a decline
            log.error("provider_rejected_request", error=repr(error))
            answer = ProviderAnswer(
                approved=False, message=f"payment provider refused the request: {error}"
            )
        await self._db.write(lambda conn: self._record_provider_answer(conn, p.order_id, answer))

    def _record_provider_answer(
        self, conn: Connection, order_id: str, answer: ProviderAnswer
    ) -> None:
        """Records the provider's answer for a PENDING payment and announces the outcome. If
        the payment was voided meanwhile, an approval at the provider is voided too."""
        at = now()
        p = store.get_payment(conn, order_id)
        if answer.void_pending or (
            answer.approved and (p is None or p.status is not PaymentStatus.PENDING)
        ):
            store.add_pending_void(conn, order_id, at)
        if p is None or p.status is not PaymentStatus.PENDING:
            return
        if answer.approved:
            settled = p.moved_to(PaymentStatus.AUTHORIZED, at)
        else:
            store.change_available(conn, p.customer_id, p.amount_minor, at)
            reason = (
                DeclineReason.PROVIDER_UNAVAILABLE
                if answer.unavailable
                else DeclineReason.PROVIDER_DECLINED
            )
            settled = replace(
                p.moved_to(PaymentStatus.DECLINED, at),
                decline_reason=reason,
                decline_message=answer.message,
            )
        store.save_payment(conn, settled)
        _stage_outcome(conn, settled, f"{order_id}:provider")
        log.info(
            "payment_" + settled.status.value.lower(), order_id=order_id, reason=answer.message
        )

    async def retry_provider_voids(self) -> None:
        """Voids at the provider what it could not take before, until it confirms each."""
        for key in await self._db.read(store.pending_voids):
            try:
                await self._provider.void(key)
            except DependencyUnavailableError:
                return  # still down; the next round tries again
            except Exception as error:  # the provider refused the void: keep it, say why
                log.error("provider_void_refused", order_id=key, error=repr(error))
                return
            await self._db.write(partial(store.remove_pending_void, key=key))
            log.info("provider_void_confirmed", order_id=key)
