"""Payments through a real gRPC channel and real JetStream: accounts, authorisations that hold
credit once per order, declines with reasons, voids and refunds that give it back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from nats.aio.client import Client
from shop.orders.v1 import events_pb2 as order_events_pb2
from shop.payments.v1 import commands_pb2, events_pb2, payments_pb2, payments_service_pb2_grpc
from shop.payments.v1 import payments_service_pb2 as pb

from tests.support.bus import StreamWatcher, send
from tests.support.grpc_client import CALL_TIMEOUT_S as T
from tests.support.grpc_client import field_violations
from tests.support.paygate import PayGateControl
from tests.support.processes import ServiceRunner

pytestmark = pytest.mark.usefixtures("storage")
"""Every test on SQLite and on PostgreSQL (the services' CONCORD_<SERVICE>_DATABASE_URL)."""

Stub = payments_service_pb2_grpc.PaymentsServiceStub

EVENTS = "SHOP_PAYMENTS_EVENTS"


def authorize(
    order_id: str, amount: int, customer: str = "alice", currency: str = "USD"
) -> commands_pb2.AuthorizePayment:
    return commands_pb2.AuthorizePayment(
        command_id=str(uuid.uuid4()),
        order_id=order_id,
        customer_id=customer,
        amount_minor=amount,
        currency_code=currency,
    )


@pytest.fixture
async def payments(services: ServiceRunner) -> AsyncIterator[Stub]:
    running = services.start("payments")
    async with grpc.aio.insecure_channel(running.address) as ch:
        stub = payments_service_pb2_grpc.PaymentsServiceStub(ch)
        await stub.OpenAccount(
            pb.OpenAccountRequest(
                customer_id="alice", credit_limit_minor=10_000, currency_code="USD"
            ),
            timeout=T,
        )
        yield stub


async def available(stub: Stub, customer: str = "alice") -> int:
    return int(
        (
            await stub.GetAccount(pb.GetAccountRequest(customer_id=customer), timeout=T)
        ).account.available_minor
    )


async def test_account_errors(payments: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await payments.OpenAccount(
            pb.OpenAccountRequest(customer_id="alice", credit_limit_minor=1, currency_code="USD"),
            timeout=T,
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await payments.OpenAccount(
            pb.OpenAccountRequest(customer_id="", credit_limit_minor=-5, currency_code="US"),
            timeout=T,
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(err.value)) == {
        "customer_id",
        "credit_limit_minor",
        "currency_code",
    }
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await payments.GetAccount(pb.GetAccountRequest(customer_id="bob"), timeout=T)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await payments.GetPayment(pb.GetPaymentRequest(order_id="ord_none"), timeout=T)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_authorise_twice_holds_once_then_capture(payments: Stub, nats_client: Client) -> None:
    watcher = StreamWatcher(nats_client, EVENTS)
    await send(nats_client, authorize("ord_1", 2_500))
    await watcher.wait_for(events_pb2.PaymentAuthorized, "ord_1")
    await send(
        nats_client, authorize("ord_1", 2_500)
    )  # a repeat answers the same, holds nothing more
    authorized = await watcher.wait_for(events_pb2.PaymentAuthorized, "ord_1", count=2)
    assert {e.amount_minor for e in authorized} == {2_500}
    assert await available(payments) == 7_500

    await send(
        nats_client, commands_pb2.CapturePayment(command_id=str(uuid.uuid4()), order_id="ord_1")
    )
    await watcher.wait_for(events_pb2.PaymentCaptured, "ord_1")
    payment = (await payments.GetPayment(pb.GetPaymentRequest(order_id="ord_1"), timeout=T)).payment
    assert payment.status == payments_pb2.PAYMENT_STATUS_CAPTURED
    assert await available(payments) == 7_500


async def test_declines_carry_their_reason(payments: Stub, nats_client: Client) -> None:
    watcher = StreamWatcher(nats_client, EVENTS)
    await send(nats_client, authorize("ord_big", 50_000))
    await send(nats_client, authorize("ord_who", 100, customer="nobody"))
    await send(nats_client, authorize("ord_eur", 100, currency="EUR"))
    await send(nats_client, authorize("ord_zero", 0))
    reasons = {}
    for order_id in ("ord_big", "ord_who", "ord_eur", "ord_zero"):
        [declined] = await watcher.wait_for(events_pb2.PaymentDeclined, order_id)
        reasons[order_id] = declined.reason
        assert declined.message
    assert reasons == {
        "ord_big": payments_pb2.DECLINE_REASON_INSUFFICIENT_CREDIT,
        "ord_who": payments_pb2.DECLINE_REASON_UNKNOWN_CUSTOMER,
        "ord_eur": payments_pb2.DECLINE_REASON_CURRENCY_MISMATCH,
        "ord_zero": payments_pb2.DECLINE_REASON_INVALID_AMOUNT,
    }
    assert await available(payments) == 10_000


async def test_void_and_refund_return_credit(payments: Stub, nats_client: Client) -> None:
    watcher = StreamWatcher(nats_client, EVENTS)
    await send(nats_client, authorize("ord_v", 1_000))
    await send(nats_client, authorize("ord_r", 2_000))
    await watcher.wait_for(events_pb2.PaymentAuthorized, count=2)
    assert await available(payments) == 7_000

    await send(
        nats_client,
        commands_pb2.VoidPayment(
            command_id=str(uuid.uuid4()), order_id="ord_v", reason="out of stock"
        ),
    )
    [voided] = await watcher.wait_for(events_pb2.PaymentVoided, "ord_v")
    assert voided.amount_minor == 1_000

    await send(
        nats_client, commands_pb2.CapturePayment(command_id=str(uuid.uuid4()), order_id="ord_r")
    )
    await watcher.wait_for(events_pb2.PaymentCaptured, "ord_r")
    await send(
        nats_client,
        order_events_pb2.OrderCancellationRequested(
            event_id=str(uuid.uuid4()), order_id="ord_r", version=7, customer_id="alice"
        ),
    )
    [refunded] = await watcher.wait_for(events_pb2.PaymentRefunded, "ord_r")
    assert refunded.amount_minor == 2_000
    assert await available(payments) == 10_000


async def test_parallel_authorisations_never_exceed_the_limit(
    payments: Stub, nats_client: Client
) -> None:
    watcher = StreamWatcher(nats_client, EVENTS)
    orders = [f"ord_{i}" for i in range(30)]
    await asyncio.gather(*(send(nats_client, authorize(o, 1_000)) for o in orders))
    while (
        len(watcher.of_type(events_pb2.PaymentAuthorized))
        + len(watcher.of_type(events_pb2.PaymentDeclined))
        < 30
    ):
        await watcher.poll()
    assert len(watcher.of_type(events_pb2.PaymentAuthorized)) == 10
    assert len(watcher.of_type(events_pb2.PaymentDeclined)) == 20
    assert await available(payments) == 0


async def test_paygate_answers_garbage_bytes_with_invalid_argument(
    services: ServiceRunner,
) -> None:
    """PayGate decodes requests the services' way (grpc_errors.DomainErrorInterceptor): bytes
    that are no request are the caller's mistake, not UNKNOWN; PayGate keeps serving after."""
    paygate = services.start("paygate")
    async with grpc.aio.insecure_channel(paygate.address) as ch:
        for method in ("Authorize", "GetAuthorization", "Void"):
            raw = ch.unary_unary(f"/paygate.v1.PaymentGatewayService/{method}")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await raw(b"\xff\xff\xff\xff", timeout=T)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
        control = PayGateControl(ch)
        assert await control.outcome("never-authorised") is None
