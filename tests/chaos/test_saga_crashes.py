"""kill -9 at every step of the place-order saga, in every process, and a restart of the
messaging: each order still reaches the terminal state it would have reached, with stock and
credit exact and nothing reserved or charged twice. On both topologies: the embedded default
(SQLite, one nats-server) and the scaled one's storage and messaging (PostgreSQL, three
clustered nats-servers with streams at three replicas)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from shop.orders.v1 import orders_pb2

from runtime import catalogue
from tests.support.processes import RunningService, ServiceRunner
from tests.support.saga_outcomes import released, settled_once
from tests.support.shop import Shop, shop_client
from tools.runner.nats import NatsCluster, NatsServer
from tools.runner.topology import Topology

FAST_REDELIVERY = {"CONCORD_CONSUMER_ACK_WAIT_S": "1"}
CRASH_WAIT_S = 30.0


@dataclass
class World:
    services: ServiceRunner
    shop: Shop
    messaging: NatsServer | NatsCluster

    def start(self, name: str, crash_at: str | None = None) -> RunningService:
        env = dict(FAST_REDELIVERY)
        if crash_at:
            env["CONCORD_CRASH_AT"] = crash_at
        return self.services.start(name, env=env)


DEPLOYMENTS = {"embedded": "sqlite", "scaled": "postgresql"}
"""Each topology's storage backend."""


@pytest.fixture(params=list(DEPLOYMENTS))
def deployment(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def storage(deployment: str) -> str:
    """The conftest's `storage`, chosen by the topology (the `stack` fixture reads it)."""
    return DEPLOYMENTS[deployment]


@pytest.fixture
async def world(
    deployment: str, storage: str, topology: Topology, request: pytest.FixtureRequest
) -> AsyncIterator[World]:
    if deployment == "embedded":
        services = request.getfixturevalue("services")
        messaging = request.getfixturevalue("nats_server")
    else:
        services = request.getfixturevalue("cluster_services")
        messaging = request.getfixturevalue("nats_cluster")
    async with shop_client(topology) as shop:
        yield World(services, shop, messaging)


def restart_messaging(messaging: NatsServer | NatsCluster) -> None:
    """kill -9 every nats-server (one, or every node of the cluster), then start them again
    from what they have on disk."""
    if isinstance(messaging, NatsServer):
        messaging.kill()
        messaging.start()
        return
    for node in messaging.nodes:
        node.kill()
    messaging.start()


async def died(service: RunningService) -> None:
    for _ in range(int(CRASH_WAIT_S / 0.05)):
        if not service.process.running():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{service.component.name} never reached its crash point")


async def place_through_crash(shop: Shop, customer: str, product: str, quantity: int) -> str:
    """The orders process may die before it answers; the idempotency key makes a retry safe."""
    try:
        return (await shop.place(customer, [(product, quantity)], key="crash-test")).order_id
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return ""


async def assert_confirmed_once(world: World, customer: str, order_id: str, product: str) -> None:
    order = await settled_once(world.shop, customer, order_id)
    assert order.status == orders_pb2.ORDER_STATUS_CONFIRMED, order.rejection_reason
    stock = await released(world.shop, product)
    assert (stock.stock_on_hand, stock.stock_reserved) == (8, 0)
    assert (await world.shop.credit(customer)).available_minor == 8_000


ORDERS_CRASH_POINTS = [
    "outbox.after_publish:shop.orders.v1.OrderPlaced",
    # OrderPlaced acknowledged while ReserveStock, staged with it, is still in the relay's
    # window: neither row is marked sent, both are republished (and dropped as duplicates).
    "outbox.mid_window:shop.orders.v1.OrderPlaced",
    "outbox.after_publish:shop.inventory.v1.ReserveStock",
    "consumer.after_commit:shop.inventory.v1.StockReserved",
    "outbox.after_publish:shop.payments.v1.AuthorizePayment",
    "consumer.after_commit:shop.payments.v1.PaymentAuthorized",
]


@pytest.mark.parametrize("crash_at", ORDERS_CRASH_POINTS)
async def test_orders_killed_mid_saga_resumes_on_restart(world: World, crash_at: str) -> None:
    world.start("inventory")
    world.start("payments")
    orders = world.start("orders", crash_at)
    product = await world.shop.product(stock=10, price_minor=1_000)
    await world.shop.account("alice", 10_000)

    order_id = await place_through_crash(world.shop, "alice", product, 2)
    await died(orders)
    world.start("orders")
    order_id = order_id or await place_through_crash(world.shop, "alice", product, 2)
    await assert_confirmed_once(world, "alice", order_id, product)


@pytest.mark.parametrize(
    ("service", "crash_at"),
    [
        ("inventory", "consumer.after_commit:shop.inventory.v1.ReserveStock"),
        ("inventory", "outbox.after_publish:shop.inventory.v1.StockReserved"),
        ("payments", "consumer.after_commit:shop.payments.v1.AuthorizePayment"),
        ("payments", "outbox.after_publish:shop.payments.v1.PaymentAuthorized"),
    ],
)
async def test_participant_killed_mid_saga_resumes_on_restart(
    world: World, service: str, crash_at: str
) -> None:
    crashing = {service: crash_at}
    running = {p.name: world.start(p.name, crashing.get(p.name)) for p in catalogue.shop_services()}
    product = await world.shop.product(stock=10, price_minor=1_000)
    await world.shop.account("alice", 10_000)

    order_id = await place_through_crash(world.shop, "alice", product, 2)
    await died(running[service])
    world.start(service)
    await assert_confirmed_once(world, "alice", order_id, product)


async def test_declined_order_killed_before_ack_still_rejects_once(world: World) -> None:
    world.start("inventory")
    world.start("payments")
    orders = world.start("orders", "consumer.after_commit:shop.payments.v1.PaymentDeclined")
    product = await world.shop.product(stock=10, price_minor=1_000)
    await world.shop.account("bob", 500)

    order_id = await place_through_crash(world.shop, "bob", product, 2)
    await died(orders)
    world.start("orders")
    order = await settled_once(world.shop, "bob", order_id)
    assert order.status == orders_pb2.ORDER_STATUS_REJECTED
    assert "insufficient credit" in order.rejection_reason
    stock = await world.shop.stock(product)
    assert (stock.stock_on_hand, stock.stock_reserved) == (10, 0)
    assert (await world.shop.credit("bob")).available_minor == 500


async def test_nats_restart_mid_saga(world: World) -> None:
    """With payments away the saga waits at the authorisation step; every nats-server is killed
    and restarted (JetStream on disk) before payments returns; the order still confirms once."""
    world.start("inventory")
    payments = world.start("payments")
    world.start("orders")
    product = await world.shop.product(stock=10, price_minor=1_000)
    await world.shop.account("alice", 10_000)
    payments.stop()

    order_id = (await world.shop.place("alice", [(product, 2)])).order_id
    for _ in range(200):  # wait until the reservation is in, i.e. the saga is authorising
        if (await world.shop.stock(product)).stock_reserved == 2:
            break
        await asyncio.sleep(0.05)
    assert (await world.shop.stock(product)).stock_reserved == 2
    assert (await world.shop.get("alice", order_id)).status == orders_pb2.ORDER_STATUS_PENDING
    restart_messaging(world.messaging)
    world.start("payments")
    await assert_confirmed_once(world, "alice", order_id, product)
