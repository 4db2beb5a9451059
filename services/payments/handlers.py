"""Reactions to payment commands (AuthorizePayment, VoidPayment, CapturePayment) and, for the
cancellation choreography, to OrderCancellationRequested. Each runs inside the consumer's
transaction and answers with an event staged in the outbox."""

from __future__ import annotations

from dataclasses import replace

from google.protobuf.message import Message
from shop.orders.v1 import events_pb2 as order_events_pb2
from shop.payments.v1 import commands_pb2, events_pb2, payments_pb2

from runtime import outbox
from runtime.consumer import Subscription, handler_map
from runtime.database import Connection
from runtime.events import stamped
from runtime.ids import now
from runtime.logs import get_logger
from runtime.streams import commands_stream, events_stream
from services.payments import store
from services.payments.domain import DeclineReason, Payment, PaymentStatus, authorisation_decline
from services.payments.provider import ProviderAnswer

log = get_logger(__name__)


def _stage_outcome(conn: Connection, p: Payment, causation_id: str) -> None:
    """Answers with where the payment stands: the reply to a first or a repeated command.
    A PENDING payment has no answer yet: the authorisation worker sends it."""
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


def authorize_payment(conn: Connection, cmd: commands_pb2.AuthorizePayment) -> None:
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
    _stage_outcome(conn, payment, cmd.command_id)
    log.info(
        "payment_" + payment.status.value.lower(),
        order_id=cmd.order_id,
        amount_minor=cmd.amount_minor,
    )


def finish_authorization(conn: Connection, order_id: str, answer: ProviderAnswer) -> None:
    """Records the provider's answer for a PENDING payment and announces the outcome. If the
    payment was voided meanwhile, an approval at the provider is voided too."""
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
    log.info("payment_" + settled.status.value.lower(), order_id=order_id, reason=answer.message)


def void_payment(conn: Connection, cmd: commands_pb2.VoidPayment) -> None:
    """Returns an authorisation's hold; with nothing authorised, leaves a VOIDED tombstone so a
    late AuthorizePayment for the order holds nothing."""
    at = now()
    existing = store.get_payment(conn, cmd.order_id)
    returned = 0
    if existing is None:
        voided = Payment(cmd.order_id, "", 0, "", PaymentStatus.VOIDED, None, cmd.reason, 1, at, at)
    elif existing.status in (PaymentStatus.AUTHORIZED, PaymentStatus.PENDING):
        returned = existing.amount_minor
        store.change_available(conn, existing.customer_id, returned, at)
        store.add_pending_void(conn, cmd.order_id, at)
        voided = existing.moved_to(PaymentStatus.VOIDED, at)
    else:
        voided = existing.moved_to(existing.status, at)
    store.save_payment(conn, voided)
    outbox.stage(
        conn,
        stamped(
            events_pb2.PaymentVoided(amount_minor=returned, reason=cmd.reason),
            at,
            aggregate_id=cmd.order_id,
            version=voided.version,
            causation_id=cmd.command_id,
        ),
    )


def capture_payment(conn: Connection, cmd: commands_pb2.CapturePayment) -> None:
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
    outbox.stage(
        conn,
        stamped(
            events_pb2.PaymentCaptured(amount_minor=captured.amount_minor),
            at,
            aggregate_id=cmd.order_id,
            version=captured.version,
            causation_id=cmd.command_id,
        ),
    )


def on_order_cancellation_requested(
    conn: Connection, event: order_events_pb2.OrderCancellationRequested
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


def subscriptions() -> list[Subscription]:
    return [
        Subscription(
            stream=commands_stream("payments"),
            durable="payments-commands",
            handlers=handler_map(
                (commands_pb2.AuthorizePayment, authorize_payment),
                (commands_pb2.VoidPayment, void_payment),
                (commands_pb2.CapturePayment, capture_payment),
            ),
        ),
        Subscription(
            stream=events_stream("orders"),
            durable="payments-order-events",
            handlers=handler_map(
                (order_events_pb2.OrderCancellationRequested, on_order_cancellation_requested)
            ),
        ),
    ]
