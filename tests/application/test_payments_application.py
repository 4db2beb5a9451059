"""Payments' use cases in-process: feed a command, an event or an API call, then check the
account, the payment and the messages staged in the outbox. The payment provider is a fake
behind clients.PaymentProvider: it stands in for an outside party."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from shop.orders.v1 import events_pb2 as order_events_pb2
from shop.payments.v1 import commands_pb2, events_pb2, payments_pb2

from runtime.caller import INTERNAL, Caller, Role
from runtime.consumer import Subscription
from runtime.database import Database
from runtime.errors import (
    AlreadyExistsError,
    DependencyUnavailableError,
    NotFoundError,
    PermissionDeniedError,
)
from runtime.ids import new_message_id
from services.payments import consumers, store
from services.payments.application import Payments
from services.payments.clients import ProviderAnswer
from services.payments.domain import DeclineReason, PaymentStatus
from services.payments.workers import AuthorizationWorker
from tests.support.application import deliver, migrated_database, staged_messages
from tests.support.polling import eventually

ALICE = Caller("alice")
BOB = Caller("bob")
ADMIN = Caller("root", frozenset({Role.ADMIN}))


class FakeProvider:
    """Answers every authorisation with `answer`; voids fail while `down`."""

    def __init__(self) -> None:
        self.answer = ProviderAnswer(approved=True)
        self.down = False
        self.authorized: list[str] = []
        self.voided: list[str] = []

    async def authorize(
        self, key: str, customer_id: str, amount_minor: int, currency_code: str
    ) -> ProviderAnswer:
        self.authorized.append(key)
        return self.answer

    async def void(self, key: str) -> None:
        if self.down:
            raise DependencyUnavailableError("paygate", "down")
        self.voided.append(key)


@pytest.fixture
async def db(tmp_path: Path, database_url: Callable[[str], str | None]) -> AsyncIterator[Database]:
    async with migrated_database(
        tmp_path, "payments", store.MIGRATIONS, database_url("payments")
    ) as db:
        yield db


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
async def payments(db: Database, provider: FakeProvider) -> Payments:
    app = Payments(db, provider)
    await app.open_account(INTERNAL, "alice", 10_000, "USD")
    return app


@pytest.fixture
def subscriptions(payments: Payments) -> list[Subscription]:
    return consumers.subscriptions(payments)


def authorize(
    order_id: str, amount_minor: int, customer_id: str = "alice"
) -> commands_pb2.AuthorizePayment:
    return commands_pb2.AuthorizePayment(
        command_id=new_message_id(),
        order_id=order_id,
        customer_id=customer_id,
        amount_minor=amount_minor,
        currency_code="USD",
    )


async def available(payments: Payments) -> int:
    return (await payments.get_account(INTERNAL, "alice")).available_minor


async def authorised(
    db: Database, payments: Payments, subs: list[Subscription], order_id: str, amount: int
) -> None:
    await deliver(db, subs, authorize(order_id, amount))
    [pending] = await payments.pending_authorisations()
    await payments.settle_authorisation(pending)


async def test_opened_account_has_its_limit_available_and_is_read_by_its_customer(
    payments: Payments,
) -> None:
    account = await payments.open_account(ADMIN, "bob", 500, "EUR")
    assert (account.credit_limit_minor, account.available_minor) == (500, 500)
    assert await payments.get_account(BOB, "bob") == account
    with pytest.raises(NotFoundError):
        await payments.get_account(ALICE, "bob")
    with pytest.raises(AlreadyExistsError):
        await payments.open_account(ADMIN, "bob", 500, "EUR")
    with pytest.raises(PermissionDeniedError):
        await payments.open_account(ALICE, "carol", 500, "EUR")


async def test_authorisation_holds_credit_while_the_provider_is_asked_then_is_announced(
    db: Database,
    payments: Payments,
    provider: FakeProvider,
    subscriptions: list[Subscription],
) -> None:
    cmd = authorize("ord_1", 2_500)
    await deliver(db, subscriptions, cmd)
    assert (await payments.get_payment(ALICE, "ord_1")).status is PaymentStatus.PENDING
    assert await available(payments) == 7_500
    assert await staged_messages(db) == []  # no answer before the provider's
    [pending] = await payments.pending_authorisations()
    await payments.settle_authorisation(pending)
    payment = await payments.get_payment(ALICE, "ord_1")
    assert (payment.status, payment.version) == (PaymentStatus.AUTHORIZED, 2)
    assert provider.authorized == ["ord_1"] and await available(payments) == 7_500
    [event] = await staged_messages(db)
    assert isinstance(event, events_pb2.PaymentAuthorized)
    assert (event.order_id, event.customer_id, event.amount_minor, event.version) == (
        "ord_1",
        "alice",
        2_500,
        2,
    )
    assert event.causation_id == "ord_1:provider"
    with pytest.raises(NotFoundError):
        await payments.get_payment(BOB, "ord_1")


async def test_redelivered_authorize_payment_changes_nothing_and_stages_nothing(
    db: Database, payments: Payments, subscriptions: list[Subscription]
) -> None:
    cmd = authorize("ord_1", 2_500, customer_id="nobody")
    assert await deliver(db, subscriptions, cmd)
    staged = await staged_messages(db)
    assert not await deliver(db, subscriptions, cmd)
    assert await staged_messages(db) == staged


async def test_repeated_authorisation_for_an_order_holds_once_and_answers_the_same(
    db: Database, payments: Payments, subscriptions: list[Subscription]
) -> None:
    await authorised(db, payments, subscriptions, "ord_1", 2_500)
    again = authorize("ord_1", 2_500)
    await deliver(db, subscriptions, again)
    assert await available(payments) == 7_500
    answer = (await staged_messages(db))[-1]
    assert isinstance(answer, events_pb2.PaymentAuthorized)
    assert (answer.amount_minor, answer.causation_id) == (2_500, again.command_id)


@pytest.mark.parametrize(
    ("customer_id", "amount", "reason"),
    [
        ("alice", 10_001, payments_pb2.DECLINE_REASON_INSUFFICIENT_CREDIT),
        ("nobody", 100, payments_pb2.DECLINE_REASON_UNKNOWN_CUSTOMER),
    ],
)
async def test_refused_authorisation_holds_nothing_and_is_declined_with_the_reason(
    db: Database,
    payments: Payments,
    provider: FakeProvider,
    subscriptions: list[Subscription],
    customer_id: str,
    amount: int,
    reason: int,
) -> None:
    cmd = authorize("ord_1", amount, customer_id)
    await deliver(db, subscriptions, cmd)
    assert await available(payments) == 10_000
    assert await payments.pending_authorisations() == [] and provider.authorized == []
    [answer] = await staged_messages(db)
    assert isinstance(answer, events_pb2.PaymentDeclined)
    assert (answer.reason, answer.version, answer.causation_id) == (reason, 1, cmd.command_id)


async def test_provider_decline_returns_the_credit(
    db: Database,
    payments: Payments,
    provider: FakeProvider,
    subscriptions: list[Subscription],
) -> None:
    provider.answer = ProviderAnswer(approved=False, message="card stolen")
    await authorised(db, payments, subscriptions, "ord_1", 2_500)
    payment = await payments.get_payment(INTERNAL, "ord_1")
    assert (payment.status, payment.decline_reason) == (
        PaymentStatus.DECLINED,
        DeclineReason.PROVIDER_DECLINED,
    )
    assert await available(payments) == 10_000
    [answer] = await staged_messages(db)
    assert isinstance(answer, events_pb2.PaymentDeclined)
    assert (answer.reason, answer.message) == (
        payments_pb2.DECLINE_REASON_PROVIDER_DECLINED,
        "card stolen",
    )


async def test_unreachable_provider_declines_and_its_void_is_retried_until_taken(
    db: Database,
    payments: Payments,
    provider: FakeProvider,
    subscriptions: list[Subscription],
) -> None:
    provider.answer = ProviderAnswer(
        approved=False, message="provider down", unavailable=True, void_pending=True
    )
    provider.down = True
    await authorised(db, payments, subscriptions, "ord_1", 2_500)
    payment = await payments.get_payment(INTERNAL, "ord_1")
    assert payment.decline_reason is DeclineReason.PROVIDER_UNAVAILABLE
    assert await available(payments) == 10_000
    await payments.retry_provider_voids()
    assert provider.voided == []
    provider.down = False
    await payments.retry_provider_voids()
    await payments.retry_provider_voids()
    assert provider.voided == ["ord_1"]  # once: the confirmed void is forgotten


async def test_void_returns_the_hold_and_voids_at_the_provider(
    db: Database,
    payments: Payments,
    provider: FakeProvider,
    subscriptions: list[Subscription],
) -> None:
    await authorised(db, payments, subscriptions, "ord_1", 2_500)
    void = commands_pb2.VoidPayment(
        command_id=new_message_id(), order_id="ord_1", reason="out of stock"
    )
    await deliver(db, subscriptions, void)
    assert (await payments.get_payment(INTERNAL, "ord_1")).status is PaymentStatus.VOIDED
    assert await available(payments) == 10_000
    answer = (await staged_messages(db))[-1]
    assert isinstance(answer, events_pb2.PaymentVoided)
    assert (answer.amount_minor, answer.reason, answer.causation_id) == (
        2_500,
        "out of stock",
        void.command_id,
    )
    await payments.retry_provider_voids()
    assert provider.voided == ["ord_1"]


async def test_an_approval_landing_after_the_void_is_voided_too(
    db: Database,
    payments: Payments,
    provider: FakeProvider,
    subscriptions: list[Subscription],
) -> None:
    await deliver(db, subscriptions, authorize("ord_1", 2_500))
    [pending] = await payments.pending_authorisations()
    void = commands_pb2.VoidPayment(command_id=new_message_id(), order_id="ord_1", reason="late")
    await deliver(db, subscriptions, void)
    staged = await staged_messages(db)
    await payments.settle_authorisation(pending)  # the provider approves after all
    assert (await payments.get_payment(INTERNAL, "ord_1")).status is PaymentStatus.VOIDED
    assert await staged_messages(db) == staged and await available(payments) == 10_000
    await payments.retry_provider_voids()
    assert provider.voided == ["ord_1"]


async def test_capture_charges_once(
    db: Database, payments: Payments, subscriptions: list[Subscription]
) -> None:
    await authorised(db, payments, subscriptions, "ord_1", 2_500)
    for _ in range(2):
        capture = commands_pb2.CapturePayment(command_id=new_message_id(), order_id="ord_1")
        await deliver(db, subscriptions, capture)
    payment = await payments.get_payment(INTERNAL, "ord_1")
    assert (payment.status, payment.version) == (PaymentStatus.CAPTURED, 3)
    assert await available(payments) == 7_500
    answers = (await staged_messages(db))[-2:]
    assert [type(m) for m in answers] == [events_pb2.PaymentCaptured] * 2


async def test_capture_without_an_authorisation_stages_nothing(
    db: Database, subscriptions: list[Subscription]
) -> None:
    capture = commands_pb2.CapturePayment(command_id=new_message_id(), order_id="ord_1")
    await deliver(db, subscriptions, capture)
    assert await staged_messages(db) == []


async def test_cancellation_refunds_a_captured_payment_once(
    db: Database, payments: Payments, subscriptions: list[Subscription]
) -> None:
    await authorised(db, payments, subscriptions, "ord_1", 2_500)
    capture = commands_pb2.CapturePayment(command_id=new_message_id(), order_id="ord_1")
    await deliver(db, subscriptions, capture)
    cancelled = order_events_pb2.OrderCancellationRequested(
        event_id=new_message_id(), order_id="ord_1", customer_id="alice"
    )
    assert await deliver(db, subscriptions, cancelled)
    assert not await deliver(db, subscriptions, cancelled)
    assert (await payments.get_payment(INTERNAL, "ord_1")).status is PaymentStatus.REFUNDED
    assert await available(payments) == 10_000
    answer = (await staged_messages(db))[-1]
    assert isinstance(answer, events_pb2.PaymentRefunded)
    assert (answer.amount_minor, answer.version, answer.causation_id) == (
        2_500,
        4,
        cancelled.event_id,
    )


async def test_cancellation_of_an_order_with_no_payment_refunds_nothing(
    db: Database, subscriptions: list[Subscription]
) -> None:
    cancelled = order_events_pb2.OrderCancellationRequested(
        event_id=new_message_id(), order_id="ord_1", customer_id="alice"
    )
    await deliver(db, subscriptions, cancelled)
    [answer] = await staged_messages(db)
    assert isinstance(answer, events_pb2.PaymentRefunded)
    assert (answer.amount_minor, answer.version) == (0, 1)


async def test_worker_settles_pending_authorisations_with_the_provider(
    db: Database,
    payments: Payments,
    provider: FakeProvider,
    subscriptions: list[Subscription],
) -> None:
    worker = asyncio.create_task(AuthorizationWorker(payments, 0.05).run())
    try:
        await deliver(db, subscriptions, authorize("ord_1", 2_500))
        payment = await eventually(
            lambda: payments.get_payment(INTERNAL, "ord_1"),
            lambda p: p.status is not PaymentStatus.PENDING,
            5,
            "the worker settles the payment",
        )
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    assert payment.status is PaymentStatus.AUTHORIZED
    assert provider.authorized == ["ord_1"]
    [answer] = await staged_messages(db)
    assert isinstance(answer, events_pb2.PaymentAuthorized)
