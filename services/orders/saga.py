"""The place-order saga as a state machine: reserve stock, then authorise payment, then
confirm; a shortage rejects; a decline or a step that times out compensates (release stock,
void payment) and then rejects with the reason.

The one state machine of placing an order: each function takes the saga, the order and one
fact, and returns a Transition with everything the step implies: the next saga state, the
order's new events (written by the domain, which does not decide again) and the commands to
send. The application persists all of it in one transaction with the outbox, so a crash at any
point resumes from the last committed state. A fact the current step does not expect (late,
redelivered, or for a step already left) is an empty Transition.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

from google.protobuf.message import Message
from shop.inventory.v1 import commands_pb2 as inventory_cmd
from shop.payments.v1 import commands_pb2 as payments_cmd

from services.orders import domain
from services.orders.domain import Order


class SagaStep(Enum):
    RESERVING = "RESERVING"
    AUTHORIZING = "AUTHORIZING"
    COMPENSATING = "COMPENSATING"
    DONE = "DONE"


@dataclass(frozen=True)
class Saga:
    """Persisted as JSON in the `sagas` table; its shape is what databases hold today."""

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
    events: list[Message] = field(default_factory=list)
    """The order's events this step implies, already versioned after the order's."""
    commands: list[Message] = field(default_factory=list)


def _command_id(saga: Saga, action: str) -> str:
    """Deterministic, so a replayed transition sends the same command id (deduplicated)."""
    return f"{saga.order_id}:{action}:{saga.attempt}"


def answers_release(saga: Saga, causation_id: str) -> bool:
    """Whether a StockReleased answers this saga's own ReleaseStock (a compensation), rather
    than the order's cancellation."""
    return causation_id == _command_id(saga, "release")


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


def _rejected(saga: Saga, order: Order, reason: str, at: float) -> Transition:
    done = replace(saga, step=SagaStep.DONE, reason=reason)
    return Transition(done, domain.reject(order, reason, at))


def start(order: Order, at: float, step_timeout_s: float) -> Transition:
    """The order was just placed: reserve its stock."""
    saga = Saga(order.order_id, SagaStep.RESERVING, at + step_timeout_s)
    return Transition(saga, commands=[_reserve(order, saga)])


def on_stock_reserved(saga: Saga, order: Order, at: float, step_timeout_s: float) -> Transition:
    if saga.step is not SagaStep.RESERVING:
        return Transition(saga)
    nxt = replace(saga, step=SagaStep.AUTHORIZING, deadline=at + step_timeout_s)
    return Transition(nxt, domain.record_stock_reserved(order, at), [_authorize(order, nxt)])


def on_stock_unavailable(saga: Saga, order: Order, reason: str, at: float) -> Transition:
    if saga.step is not SagaStep.RESERVING:
        return Transition(saga)
    return _rejected(saga, order, f"stock unavailable: {reason}", at)


def on_payment_authorized(saga: Saga, order: Order, at: float) -> Transition:
    if saga.step is not SagaStep.AUTHORIZING:
        return Transition(saga)
    done = replace(saga, step=SagaStep.DONE)
    commit = inventory_cmd.CommitReservation(
        command_id=_command_id(done, "commit"), order_id=saga.order_id
    )
    capture = payments_cmd.CapturePayment(
        command_id=_command_id(done, "capture"), order_id=saga.order_id
    )
    return Transition(done, domain.confirm(order, at), [commit, capture])


def _compensate(
    saga: Saga, reason: str, at: float, step_timeout_s: float, void: bool
) -> Transition:
    nxt = replace(
        saga,
        step=SagaStep.COMPENSATING,
        deadline=at + step_timeout_s,
        reason=reason,
        awaiting_release=True,
        awaiting_void=void,
    )
    return Transition(nxt, commands=_compensations(nxt))


def on_payment_declined(saga: Saga, reason: str, at: float, step_timeout_s: float) -> Transition:
    if saga.step is not SagaStep.AUTHORIZING:
        return Transition(saga)
    return _compensate(saga, f"payment declined: {reason}", at, step_timeout_s, void=False)


def _finish_if_compensated(saga: Saga, order: Order, at: float) -> Transition:
    if saga.awaiting_release or saga.awaiting_void:
        return Transition(saga)
    return _rejected(saga, order, saga.reason, at)


def on_stock_released(saga: Saga, order: Order, at: float) -> Transition:
    """The compensation's release came back (the cancellation's is the order's own)."""
    if saga.step is not SagaStep.COMPENSATING or not saga.awaiting_release:
        return Transition(saga)
    return _finish_if_compensated(replace(saga, awaiting_release=False), order, at)


def on_payment_voided(saga: Saga, order: Order, at: float) -> Transition:
    if saga.step is not SagaStep.COMPENSATING or not saga.awaiting_void:
        return Transition(saga)
    return _finish_if_compensated(replace(saga, awaiting_void=False), order, at)


def on_timeout(saga: Saga, order: Order, at: float, step_timeout_s: float) -> Transition:
    """A step took too long: compensate what may have happened. If the compensations are not
    acknowledged within another step, reject anyway: the compensating commands sit durably in
    JetStream's work queues and take effect when their service is back, so the order must not
    wait on them. A step not yet past its deadline is left alone."""
    if saga.step is SagaStep.DONE or saga.deadline >= at:
        return Transition(saga)
    if saga.step is SagaStep.RESERVING:
        return _compensate(saga, "timed out waiting for inventory", at, step_timeout_s, void=False)
    if saga.step is SagaStep.AUTHORIZING:
        return _compensate(saga, "timed out waiting for payments", at, step_timeout_s, void=True)
    pending = [
        name
        for name, waiting in (("release", saga.awaiting_release), ("void", saga.awaiting_void))
        if waiting
    ]
    return _rejected(saga, order, f"{saga.reason} (compensation queued: {', '.join(pending)})", at)
