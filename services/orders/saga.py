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
from typing import Any

from google.protobuf.message import Message
from shop.inventory.v1 import commands_pb2 as inventory_cmd
from shop.payments.v1 import commands_pb2 as payments_cmd

from runtime.errors import FailedPreconditionError
from services.orders import domain
from services.orders.domain import Order


class SagaStep(Enum):
    RESERVING = "RESERVING"
    AUTHORIZING = "AUTHORIZING"
    COMPENSATING = "COMPENSATING"
    COMPENSATION_PENDING = "COMPENSATION_PENDING"
    """The order is REJECTED, but a compensation is still unacknowledged: the saga waits on it
    (no deadline) until it lands, an operator re-sends it, or an operator resolves the saga."""
    DONE = "DONE"


OPEN_STEPS = (SagaStep.RESERVING, SagaStep.AUTHORIZING, SagaStep.COMPENSATING)
"""Steps with a deadline the watcher enforces."""


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
    step_time: float = 0.0
    """When the current step was entered (0 for sagas saved before it was recorded)."""
    entered: dict[str, float] = field(default_factory=dict)
    """Each step entered, by name, with when (the latest entry)."""
    resolution: str = ""
    """Why an operator closed the saga (ResolveSaga)."""
    commands_sent: tuple[tuple[str, str], ...] = ()
    """(type name, command id) of every command the saga sent, in order."""


def _enter(saga: Saga, step: SagaStep, at: float, **changes: Any) -> Saga:
    """The saga in a new step, with when it got there."""
    return replace(
        saga, step=step, step_time=at, entered={**saga.entered, step.value: at}, **changes
    )


@dataclass(frozen=True)
class PendingCommand:
    """A compensating command the saga still waits on."""

    type_name: str
    command_id: str


@dataclass(frozen=True)
class Transition:
    saga: Saga
    events: list[Message] = field(default_factory=list)
    """The order's events this step implies, already versioned after the order's."""
    commands: list[Message] = field(default_factory=list)


def _sending(
    saga: Saga, commands: list[Message], events: list[Message] | None = None
) -> Transition:
    """A transition that sends `commands`, which the saga keeps a record of."""
    sent = tuple((c.DESCRIPTOR.full_name, c.command_id) for c in commands)  # type: ignore[attr-defined]
    return Transition(
        replace(saga, commands_sent=saga.commands_sent + sent), events or [], commands
    )


def _command_id(saga: Saga, action: str) -> str:
    """Deterministic, so a replayed transition sends the same command id (deduplicated)."""
    return f"{saga.order_id}:{action}:{saga.attempt}"


def answers_release(saga: Saga, causation_id: str) -> bool:
    """Whether a StockReleased answers one of this saga's own ReleaseStock commands (a
    compensation, first sent or re-sent by an operator), rather than the order's cancellation."""
    return causation_id.startswith(f"{saga.order_id}:release:")


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


def pending_commands(saga: Saga) -> list[PendingCommand]:
    """The compensations sent and not yet acknowledged."""
    if saga.step not in (SagaStep.COMPENSATING, SagaStep.COMPENSATION_PENDING):
        return []
    return [
        PendingCommand(c.DESCRIPTOR.full_name, c.command_id)  # type: ignore[attr-defined]
        for c in _compensations(saga)
    ]


def _rejected(saga: Saga, order: Order, reason: str, at: float) -> Transition:
    done = _enter(saga, SagaStep.DONE, at, reason=reason)
    return Transition(done, domain.reject(order, reason, at))


def start(order: Order, at: float, step_timeout_s: float) -> Transition:
    """The order was just placed: reserve its stock."""
    saga = _enter(
        Saga(order.order_id, SagaStep.RESERVING, at + step_timeout_s), SagaStep.RESERVING, at
    )
    return _sending(saga, [_reserve(order, saga)])


def on_stock_reserved(saga: Saga, order: Order, at: float, step_timeout_s: float) -> Transition:
    if saga.step is not SagaStep.RESERVING:
        return Transition(saga)
    nxt = _enter(saga, SagaStep.AUTHORIZING, at, deadline=at + step_timeout_s)
    return _sending(nxt, [_authorize(order, nxt)], domain.record_stock_reserved(order, at))


def on_stock_unavailable(saga: Saga, order: Order, reason: str, at: float) -> Transition:
    if saga.step is not SagaStep.RESERVING:
        return Transition(saga)
    return _rejected(saga, order, f"stock unavailable: {reason}", at)


def on_payment_authorized(saga: Saga, order: Order, at: float) -> Transition:
    if saga.step is not SagaStep.AUTHORIZING:
        return Transition(saga)
    done = _enter(saga, SagaStep.DONE, at)
    commit = inventory_cmd.CommitReservation(
        command_id=_command_id(done, "commit"), order_id=saga.order_id
    )
    capture = payments_cmd.CapturePayment(
        command_id=_command_id(done, "capture"), order_id=saga.order_id
    )
    return _sending(done, [commit, capture], domain.confirm(order, at))


def _compensate(
    saga: Saga, reason: str, at: float, step_timeout_s: float, void: bool
) -> Transition:
    nxt = _enter(
        saga,
        SagaStep.COMPENSATING,
        at,
        deadline=at + step_timeout_s,
        reason=reason,
        awaiting_release=True,
        awaiting_void=void,
    )
    return _sending(nxt, _compensations(nxt))


def on_payment_declined(saga: Saga, reason: str, at: float, step_timeout_s: float) -> Transition:
    if saga.step is not SagaStep.AUTHORIZING:
        return Transition(saga)
    return _compensate(saga, f"payment declined: {reason}", at, step_timeout_s, void=False)


def _finish_if_compensated(saga: Saga, order: Order, at: float) -> Transition:
    if saga.awaiting_release or saga.awaiting_void:
        return Transition(saga)
    if saga.step is SagaStep.COMPENSATION_PENDING:  # the order was rejected already
        return Transition(_enter(saga, SagaStep.DONE, at))
    return _rejected(saga, order, saga.reason, at)


_COMPENSATING = (SagaStep.COMPENSATING, SagaStep.COMPENSATION_PENDING)


def on_stock_released(saga: Saga, order: Order, at: float) -> Transition:
    """The compensation's release came back (the cancellation's is the order's own)."""
    if saga.step not in _COMPENSATING or not saga.awaiting_release:
        return Transition(saga)
    return _finish_if_compensated(replace(saga, awaiting_release=False), order, at)


def on_payment_voided(saga: Saga, order: Order, at: float) -> Transition:
    if saga.step not in _COMPENSATING or not saga.awaiting_void:
        return Transition(saga)
    return _finish_if_compensated(replace(saga, awaiting_void=False), order, at)


def on_timeout(saga: Saga, order: Order, at: float, step_timeout_s: float) -> Transition:
    """A step took too long: compensate what may have happened. If the compensations are not
    acknowledged within another step, reject anyway: the compensating commands sit durably in
    JetStream's work queues and take effect when their service is back, so the order must not
    wait on them; the saga stays COMPENSATION_PENDING, waiting on them, for operators to see.
    A step not yet past its deadline is left alone."""
    if saga.step not in OPEN_STEPS or saga.deadline >= at:
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
    rejected = _rejected(
        saga, order, f"{saga.reason} (compensation queued: {', '.join(pending)})", at
    )
    waiting = _enter(saga, SagaStep.COMPENSATION_PENDING, at, reason=rejected.saga.reason)
    return Transition(waiting, rejected.events)


# --- operators (OrdersAdminService) -------------------------------------------------------------


def _require_pending(saga: Saga) -> None:
    if saga.step is not SagaStep.COMPENSATION_PENDING:
        raise FailedPreconditionError(
            "SAGA_NOT_COMPENSATION_PENDING",
            f"the saga of order {saga.order_id} is {saga.step.value}; only a "
            "COMPENSATION_PENDING saga has compensations to re-send or to give up on",
        )


def retry_compensation(saga: Saga, order: Order, at: float) -> Transition:
    """Re-sends what is still unacknowledged, with new command ids: JetStream drops a message
    id it saw within its duplicate window, and the participants are idempotent by order (a
    second release or void of the same order changes nothing)."""
    _require_pending(saga)
    nxt = replace(saga, attempt=saga.attempt + 1)
    commands = _compensations(nxt)
    ids = [c.command_id for c in commands]  # type: ignore[attr-defined]
    return _sending(nxt, commands, domain.record_compensation_retried(order, ids, at))


def resolve(saga: Saga, order: Order, reason: str, at: float) -> Transition:
    """An operator closes the saga (say, stock and payment fixed by hand): it stops waiting on
    its compensations, and the order records why."""
    _require_pending(saga)
    abandoned = [c.command_id for c in pending_commands(saga)]
    done = _enter(saga, SagaStep.DONE, at, resolution=reason)
    return Transition(done, domain.record_saga_resolved(order, reason, abandoned, at))
