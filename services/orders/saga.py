"""The place-order saga as a state machine: reserve stock, then authorise payment, then
confirm; a shortage rejects; a decline or a step that times out compensates (release stock,
void payment) and then rejects with the reason.

Pure functions from (saga, incoming fact) to a Transition: the next saga state, the commands
to send and whether the order is confirmed or rejected. The application layer persists all of
it in one transaction with the order's events and the outbox, so a crash at any point resumes
from the last committed state.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

from google.protobuf.message import Message
from shop.inventory.v1 import commands_pb2 as inventory_cmd
from shop.payments.v1 import commands_pb2 as payments_cmd

from services.orders.domain import Order


class SagaStep(Enum):
    RESERVING = "RESERVING"
    AUTHORIZING = "AUTHORIZING"
    COMPENSATING = "COMPENSATING"
    DONE = "DONE"


@dataclass(frozen=True)
class Saga:
    order_id: str
    step: SagaStep
    deadline: float
    attempt: int = 0
    reason: str = ""
    awaiting_release: bool = False
    awaiting_void: bool = False


@dataclass(frozen=True)
class Transition:
    saga: Saga
    commands: list[Message] = field(default_factory=list)
    stock_reserved: bool = False
    confirmed: bool = False
    rejected_reason: str | None = None


def _command_id(saga: Saga, action: str) -> str:
    """Deterministic, so a replayed transition sends the same command id (deduplicated)."""
    return f"{saga.order_id}:{action}:{saga.attempt}"


def _reserve(order: Order, saga: Saga) -> Message:
    return inventory_cmd.ReserveStock(
        command_id=_command_id(saga, "reserve"),
        order_id=order.order_id,
        lines=[{"product_id": x.product_id, "quantity": x.quantity} for x in order.lines],
    )


def _authorize(order: Order, saga: Saga) -> Message:
    return payments_cmd.AuthorizePayment(
        command_id=_command_id(saga, "authorize"),
        order_id=order.order_id,
        customer_id=order.customer_id,
        amount_minor=order.total_minor,
        currency_code=order.currency_code,
    )


def _compensations(saga: Saga) -> list[Message]:
    commands: list[Message] = []
    if saga.awaiting_release:
        commands.append(
            inventory_cmd.ReleaseStock(
                command_id=_command_id(saga, "release"), order_id=saga.order_id, reason=saga.reason
            )
        )
    if saga.awaiting_void:
        commands.append(
            payments_cmd.VoidPayment(
                command_id=_command_id(saga, "void"), order_id=saga.order_id, reason=saga.reason
            )
        )
    return commands


def start(order: Order, now: float, step_timeout_s: float) -> Transition:
    saga = Saga(order.order_id, SagaStep.RESERVING, now + step_timeout_s)
    return Transition(saga, [_reserve(order, saga)])


def on_stock_reserved(saga: Saga, order: Order, now: float, step_timeout_s: float) -> Transition:
    if saga.step is not SagaStep.RESERVING:
        return Transition(saga)
    nxt = replace(saga, step=SagaStep.AUTHORIZING, deadline=now + step_timeout_s)
    return Transition(nxt, [_authorize(order, nxt)], stock_reserved=True)


def on_stock_unavailable(saga: Saga, reason: str) -> Transition:
    if saga.step is not SagaStep.RESERVING:
        return Transition(saga)
    return Transition(
        replace(saga, step=SagaStep.DONE, reason=reason),
        rejected_reason=f"stock unavailable: {reason}",
    )


def on_payment_authorized(saga: Saga) -> Transition:
    if saga.step is not SagaStep.AUTHORIZING:
        return Transition(saga)
    done = replace(saga, step=SagaStep.DONE)
    commit = inventory_cmd.CommitReservation(
        command_id=_command_id(done, "commit"), order_id=saga.order_id
    )
    capture = payments_cmd.CapturePayment(
        command_id=_command_id(done, "capture"), order_id=saga.order_id
    )
    return Transition(done, [commit, capture], confirmed=True)


def _compensate(
    saga: Saga, reason: str, now: float, step_timeout_s: float, void: bool
) -> Transition:
    nxt = replace(
        saga,
        step=SagaStep.COMPENSATING,
        deadline=now + step_timeout_s,
        reason=reason,
        awaiting_release=True,
        awaiting_void=void,
    )
    return Transition(nxt, _compensations(nxt))


def on_payment_declined(saga: Saga, reason: str, now: float, step_timeout_s: float) -> Transition:
    if saga.step is not SagaStep.AUTHORIZING:
        return Transition(saga)
    return _compensate(saga, f"payment declined: {reason}", now, step_timeout_s, void=False)


def _finish_if_compensated(saga: Saga) -> Transition:
    if saga.awaiting_release or saga.awaiting_void:
        return Transition(saga)
    return Transition(replace(saga, step=SagaStep.DONE), rejected_reason=saga.reason)


def on_stock_released(saga: Saga) -> Transition:
    if saga.step is not SagaStep.COMPENSATING or not saga.awaiting_release:
        return Transition(saga)
    return _finish_if_compensated(replace(saga, awaiting_release=False))


def on_payment_voided(saga: Saga) -> Transition:
    if saga.step is not SagaStep.COMPENSATING or not saga.awaiting_void:
        return Transition(saga)
    return _finish_if_compensated(replace(saga, awaiting_void=False))


def on_timeout(saga: Saga, now: float, step_timeout_s: float) -> Transition:
    """A step took too long: compensate what may have happened. If the compensations are not
    acknowledged within another step, reject anyway: the compensating commands sit durably in
    JetStream's work queues and take effect when their service is back, so the order must not
    wait on them."""
    if saga.step is SagaStep.RESERVING:
        return _compensate(saga, "timed out waiting for inventory", now, step_timeout_s, void=False)
    if saga.step is SagaStep.AUTHORIZING:
        return _compensate(saga, "timed out waiting for payments", now, step_timeout_s, void=True)
    if saga.step is SagaStep.COMPENSATING:
        pending = [
            name
            for name, waiting in (("release", saga.awaiting_release), ("void", saga.awaiting_void))
            if waiting
        ]
        reason = f"{saga.reason} (compensation queued: {', '.join(pending)})"
        return Transition(replace(saga, step=SagaStep.DONE, reason=reason), rejected_reason=reason)
    return Transition(saga)
