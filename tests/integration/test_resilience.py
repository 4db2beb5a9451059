"""Faults injected at run time into real processes: a callee that stops, a payment provider
that is slow or flaps. Every call gets a definite answer, nothing is charged twice, no order is
left PENDING."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from concord.ops.v1 import ops_service_pb2, ops_service_pb2_grpc
from paygate.v1 import paygate_pb2 as pg
from shop.orders.v1 import orders_pb2
from shop.payments.v1 import payments_pb2, payments_service_pb2

from tests.support.grpc_client import CALL_TIMEOUT_S as T
from tests.support.paygate import PayGateControl
from tests.support.processes import ServiceRunner
from tests.support.shop import Shop, shop_client
from tools.runner.topology import Topology

PRICING = {
    "CONCORD_PRICING_DEADLINE_S": "0.5",
    "CONCORD_PRICING_BREAKER_FAIL_MAX": "3",
    "CONCORD_PRICING_BREAKER_RESET_TIMEOUT_S": "1",
}
PROVIDER = {
    "CONCORD_PROVIDER_DEADLINE_S": "0.3",
    "CONCORD_PROVIDER_RETRY_MAX_ATTEMPTS": "1",
    "CONCORD_PROVIDER_BREAKER_FAIL_MAX": "1000",
}


@pytest.fixture
async def shop(topology: Topology) -> AsyncIterator[Shop]:
    async with shop_client(topology) as client:
        yield client


@pytest.fixture
async def paygate(topology: Topology) -> AsyncIterator[PayGateControl]:
    async with grpc.aio.insecure_channel(topology.address("paygate")) as channel:
        yield PayGateControl(channel)


async def breaker_state(topology: Topology, callee: str) -> str:
    async with grpc.aio.insecure_channel(topology.address("orders")) as channel:
        reply = await ops_service_pb2_grpc.OperationsServiceStub(channel).GetDiagnostics(
            ops_service_pb2.GetDiagnosticsRequest(), timeout=T
        )
    return next(b.state for b in reply.breakers if b.callee == callee)


async def test_inventory_down_opens_the_pricing_breaker_and_reads_go_on(
    services: ServiceRunner, topology: Topology, shop: Shop
) -> None:
    inventory = services.start("inventory")
    services.start("payments")
    services.start("orders", env=PRICING)
    product = await shop.product(stock=10)
    await shop.account("alice", 100_000)
    confirmed = await shop.settled("alice", (await shop.place("alice", [(product, 1)])).order_id)

    inventory.stop()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.place("alice", [(product, 1)])
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "inventory" in (err.value.details() or "")
    assert await breaker_state(topology, "inventory") == "OPEN"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.place("alice", [(product, 1)])
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "inventory is unavailable: circuit breaker OPEN" in (err.value.details() or "")

    read = await shop.get("alice", confirmed.order_id)  # orders keeps serving reads
    assert read.status == orders_pb2.ORDER_STATUS_CONFIRMED

    services.start("inventory")
    await asyncio.sleep(1.2)  # past the breaker's reset timeout: the next call is the trial
    placed = await shop.place("alice", [(product, 1)])
    assert placed.status == orders_pb2.ORDER_STATUS_PENDING
    assert await breaker_state(topology, "inventory") == "CLOSED"


async def test_slow_provider_gets_a_definite_answer_and_never_charges_late(
    services: ServiceRunner, shop: Shop, paygate: PayGateControl
) -> None:
    services.start("inventory")
    services.start("payments", env=PROVIDER)
    services.start("orders")
    await paygate.behave(pg.BEHAVIOUR_SLOW, delay_ms=1_500)
    product = await shop.product(stock=10, price_minor=1_000)
    await shop.account("bob", 10_000)

    order = await shop.settled("bob", (await shop.place("bob", [(product, 2)])).order_id)
    assert order.status == orders_pb2.ORDER_STATUS_REJECTED
    assert "payment provider unavailable" in order.rejection_reason
    payment = (
        await shop.payments.GetPayment(
            payments_service_pb2.GetPaymentRequest(order_id=order.order_id), timeout=T
        )
    ).payment
    assert payment.decline_reason == payments_pb2.DECLINE_REASON_PROVIDER_UNAVAILABLE
    assert (await shop.credit("bob")).available_minor == 10_000

    await asyncio.sleep(1.7)  # the provider's slow authorisation lands now, after the void
    assert await paygate.outcome(order.order_id) == pg.OUTCOME_VOIDED
    assert (await shop.credit("bob")).available_minor == 10_000
    assert (await shop.stock(product)).stock_reserved == 0


async def test_flapping_provider_leaves_no_order_pending_and_no_charge_unaccounted(
    services: ServiceRunner, shop: Shop, paygate: PayGateControl
) -> None:
    services.start("inventory")
    services.start("payments", env=PROVIDER)
    services.start("orders")
    await paygate.behave(pg.BEHAVIOUR_FLAPPING, delay_ms=600, failure_percent=40)
    product = await shop.product(stock=1_000, price_minor=100)
    await shop.account("carol", 1_000_000)

    order_ids = []
    for _ in range(15):  # a steady stream, not a burst
        order_ids.append((await shop.place("carol", [(product, 1)])).order_id)
        await asyncio.sleep(0.05)
    orders = [await shop.settled("carol", order_id) for order_id in order_ids]

    confirmed = [o for o in orders if o.status == orders_pb2.ORDER_STATUS_CONFIRMED]
    rejected = [o for o in orders if o.status == orders_pb2.ORDER_STATUS_REJECTED]
    assert len(confirmed) + len(rejected) == 15
    assert all(o.rejection_reason for o in rejected)
    assert (await shop.credit("carol")).available_minor == 1_000_000 - 100 * len(confirmed)
    for order in confirmed:
        assert await paygate.outcome(order.order_id) == pg.OUTCOME_APPROVED
    await asyncio.sleep(0.7)  # slow authorisations still in flight at the provider land
    for order in rejected:
        assert await paygate.outcome(order.order_id) != pg.OUTCOME_APPROVED
