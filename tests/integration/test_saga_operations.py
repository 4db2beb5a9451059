"""Operators and the place-order saga, with real processes: inventory is killed (kill -9, at a
crash point) mid-saga, so the compensation a declined payment sends is not acknowledged within
its step; the order is REJECTED as always and the saga stays COMPENSATION_PENDING, listed with
the command it waits on, until the compensation lands, is re-sent, or an operator resolves it."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from concord.ops.v1 import ops_service_pb2, ops_service_pb2_grpc
from shop.orders.v1 import orders_pb2, orders_service_pb2

from tests.support.grpc_client import CALL_TIMEOUT_S as T
from tests.support.processes import ServiceRunner
from tests.support.shop import Shop, as_customer, shop_client
from tools.devstack import operators_cli
from tools.runner.topology import Topology

pytestmark = pytest.mark.usefixtures("storage")
"""Every test on SQLite and on PostgreSQL (the services' CONCORD_<SERVICE>_DATABASE_URL)."""

FAST_SAGA = {"CONCORD_ORDERS_STEP_TIMEOUT_S": "2", "CONCORD_ORDERS_SAGA_POLL_INTERVAL_S": "0.2"}
CRASH_AFTER_RESERVING = {"CONCORD_CRASH_AT": "outbox.after_publish:shop.inventory.v1.StockReserved"}
PENDING = orders_pb2.SAGA_STEP_COMPENSATION_PENDING
WAIT_S = 30.0


@dataclass
class World:
    services: ServiceRunner
    shop: Shop
    topology: Topology

    def cli(self, capsys: pytest.CaptureFixture[str], **args: object) -> str:
        """What `python -m tools.devstack <args>` prints against this stack."""
        capsys.readouterr()
        assert operators_cli.run(argparse.Namespace(**args), self.topology) == 0
        return capsys.readouterr().out


@pytest.fixture
async def world(services: ServiceRunner, topology: Topology) -> AsyncIterator[World]:
    async with shop_client(topology) as shop:
        yield World(services, shop, topology)


async def saga_in(world: World, order_id: str, step: int) -> orders_pb2.Saga:
    for _ in range(int(WAIT_S / 0.1)):
        reply = await world.shop.admin.GetSaga(
            orders_service_pb2.GetSagaRequest(order_id=order_id), timeout=T
        )
        if reply.saga.step == step:
            return reply.saga
        await asyncio.sleep(0.1)
    raise AssertionError(f"saga of {order_id} still {orders_pb2.SagaStep.Name(reply.saga.step)}")


async def compensation_pending(world: World) -> tuple[str, str]:
    """(product, order) once inventory died after reserving, payments declined, and the release
    went unanswered past its deadline."""
    inventory = world.services.start("inventory")
    world.services.start("payments")
    world.services.start("orders", env=FAST_SAGA)
    product = await world.shop.product(stock=10, price_minor=1_000)
    await world.shop.account("bob", 500)  # declines a 2,000 order
    inventory.process.stop()
    inventory = world.services.start("inventory", env=CRASH_AFTER_RESERVING)
    order_id = (await world.shop.place("bob", [(product, 2)])).order_id
    for _ in range(int(WAIT_S / 0.05)):
        if not inventory.process.running():
            break
        await asyncio.sleep(0.05)
    assert not inventory.process.running(), "inventory never reached its crash point"
    order = await world.shop.settled("bob", order_id)
    assert order.status == orders_pb2.ORDER_STATUS_REJECTED  # as before: the order does not wait
    assert "insufficient credit" in order.rejection_reason
    assert "compensation queued: release" in order.rejection_reason
    return product, order_id


async def test_compensation_pending_is_listed_and_a_retry_finishes_it(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    product, order_id = await compensation_pending(world)
    listing = world.cli(
        capsys, command="sagas", step="COMPENSATION_PENDING", stuck_s=0, action=None
    )
    assert f"{order_id}  COMPENSATION_PENDING" in listing
    assert f"waiting on shop.inventory.v1.ReleaseStock {order_id}:release:0" in listing
    listed = await world.shop.admin.ListSagas(
        orders_service_pb2.ListSagasRequest(step=PENDING), timeout=T
    )
    [saga] = [s for s in listed.sagas if s.order_id == order_id]
    assert [(c.type_name, c.command_id) for c in saga.pending_commands] == [
        ("shop.inventory.v1.ReleaseStock", f"{order_id}:release:0")
    ]
    assert not saga.HasField("deadline")
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await world.shop.admin.ResolveSaga(
            orders_service_pb2.ResolveSagaRequest(order_id=order_id), timeout=T
        )
    assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT  # a reason is required

    # Inventory comes back with a bug in releasing: the queued release is dead-lettered.
    inventory = world.services.start(
        "inventory",
        env={
            "CONCORD_FAIL_AT": "consumer.handler:shop.inventory.v1.ReleaseStock",
            "CONCORD_CONSUMER_MAX_DELIVER": "1",
        },
    )
    async with grpc.aio.insecure_channel(inventory.address) as channel:
        ops = ops_service_pb2_grpc.OperationsServiceStub(channel)
        for _ in range(int(WAIT_S / 0.1)):
            letters = await ops.ListDeadLetters(ops_service_pb2.ListDeadLettersRequest(), timeout=T)
            if letters.dead_letters:
                break
            await asyncio.sleep(0.1)
    assert [x.message_id for x in letters.dead_letters] == [f"{order_id}:release:0"]
    printed = world.cli(capsys, command="dead-letters", action="list", service="inventory")
    assert f'"orderId": "{order_id}"' in printed and "injected failure" in printed
    assert (await saga_in(world, order_id, PENDING)).pending_commands  # still waiting

    world.services.restart("inventory")  # the bug is fixed
    retried = await world.shop.admin.RetryCompensation(
        orders_service_pb2.RetryCompensationRequest(order_id=order_id), timeout=T
    )
    assert [c.command_id for c in retried.saga.pending_commands] == [f"{order_id}:release:1"]
    done = await saga_in(world, order_id, orders_pb2.SAGA_STEP_DONE)
    assert list(done.pending_commands) == []
    assert [orders_pb2.SagaStep.Name(s.step) for s in done.steps] == [
        "SAGA_STEP_RESERVING",
        "SAGA_STEP_AUTHORIZING",
        "SAGA_STEP_COMPENSATING",
        "SAGA_STEP_COMPENSATION_PENDING",
        "SAGA_STEP_DONE",
    ]
    assert [c.command_id for c in done.commands_sent] == [
        f"{order_id}:reserve:0",
        f"{order_id}:authorize:0",
        f"{order_id}:release:0",
        f"{order_id}:release:1",
    ]
    detail = world.cli(capsys, command="sagas", action="get", order_id=order_id)
    assert f"{order_id}  DONE since" in detail
    assert f"sent shop.inventory.v1.ReleaseStock {order_id}:release:1" in detail
    stock = await world.shop.stock(product)
    assert (stock.stock_on_hand, stock.stock_reserved) == (10, 0)  # stock balances
    assert (await world.shop.credit("bob")).available_minor == 500
    assert await world.shop.event_types("bob", order_id) == [
        "order_placed",
        "order_stock_reserved",
        "order_rejected",
        "order_compensation_retried",
    ]


async def test_resolved_saga_is_closed_with_its_reason_on_the_record(world: World) -> None:
    product, order_id = await compensation_pending(world)
    resolved = await world.shop.admin.ResolveSaga(
        orders_service_pb2.ResolveSagaRequest(order_id=order_id, reason="released by hand"),
        timeout=T,
    )
    assert (resolved.saga.step, resolved.saga.resolution) == (
        orders_pb2.SAGA_STEP_DONE,
        "released by hand",
    )
    assert (await world.shop.event_types("bob", order_id))[-1] == "order_saga_resolved"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await world.shop.admin.RetryCompensation(
            orders_service_pb2.RetryCompensationRequest(order_id=order_id), timeout=T
        )
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION

    world.services.start("inventory")  # the queued release lands late and changes nothing
    for _ in range(int(WAIT_S / 0.1)):
        if (await world.shop.stock(product)).stock_reserved == 0:
            break
        await asyncio.sleep(0.1)
    assert (await world.shop.stock(product)).stock_reserved == 0
    assert (await saga_in(world, order_id, orders_pb2.SAGA_STEP_DONE)).resolution
    assert (await world.shop.event_types("bob", order_id)).count("order_rejected") == 1


async def test_overdue_cancellation_is_listed_until_the_refund_lands(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.services.start("inventory")
    payments = world.services.start("payments")
    world.services.start("orders", env={"CONCORD_ORDERS_CANCELLATION_ALERT_S": "1"})
    product = await world.shop.product(stock=10)
    await world.shop.account("carol", 10_000)
    order_id = (await world.shop.place("carol", [(product, 1)])).order_id
    assert (await world.shop.settled("carol", order_id)).status == orders_pb2.ORDER_STATUS_CONFIRMED
    payments.stop()  # the refund cannot happen: the choreography stalls
    await world.shop.orders.CancelOrder(
        orders_service_pb2.CancelOrderRequest(order_id=order_id),
        timeout=T,
        metadata=as_customer("carol"),
    )
    request = orders_service_pb2.ListOverdueCancellationsRequest()  # 0: the alert setting, 1 s
    for _ in range(int(WAIT_S / 0.1)):
        reply = await world.shop.admin.ListOverdueCancellations(request, timeout=T)
        if reply.cancellations and reply.cancellations[0].stock_released:
            break
        await asyncio.sleep(0.1)
    [overdue] = reply.cancellations
    assert (overdue.order_id, overdue.stock_released, overdue.payment_refunded) == (
        order_id,
        True,
        False,
    )
    printed = world.cli(capsys, command="sagas", action="cancellations", older_s=0)
    assert f"{order_id}  CANCELLING since" in printed and "payment refunded False" in printed

    world.services.start("payments")
    await world.shop.settled("carol", order_id, (orders_pb2.ORDER_STATUS_CANCELLED,))
    reply = await world.shop.admin.ListOverdueCancellations(request, timeout=T)
    assert list(reply.cancellations) == []
