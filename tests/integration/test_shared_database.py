"""Two instances of a service on one PostgreSQL database, as the scaled topology runs them:
the checks that guard stock and credit hold across processes (SERIALIZABLE writes, retried),
and the outbox relay runs on one instance at a time (a lease), publishing every row once and in
order, and another instance takes over when the holder is killed -9."""

from __future__ import annotations

import asyncio

import grpc
import psycopg
import pytest
from nats.aio.client import Client
from shop.inventory.v1 import events_pb2 as inventory_events
from shop.inventory.v1 import inventory_service_pb2 as inventory_pb
from shop.inventory.v1 import inventory_service_pb2_grpc
from shop.payments.v1 import events_pb2 as payment_events
from shop.payments.v1 import payments_service_pb2 as payments_pb
from shop.payments.v1 import payments_service_pb2_grpc

from tests.integration.test_inventory_reservations import create_product, product, reserve
from tests.integration.test_payments import authorize
from tests.support.bus import StreamWatcher, send
from tests.support.grpc_client import CALL_TIMEOUT_S as T
from tests.support.polling import until
from tests.support.processes import RunningService, ServiceRunner
from tools.runner.ports import free_port
from tools.runner.stack import Stack

pytestmark = pytest.mark.usefixtures("storage")


@pytest.fixture
def storage() -> str:
    """PostgreSQL only: two processes sharing one SQLite file serialise every write anyway."""
    return "postgresql"


FAST_LEASES = {"CONCORD_LEASE_TTL_S": "2", "CONCORD_OUTBOX_POLL_INTERVAL_S": "0.2"}


def two_instances(services: ServiceRunner, name: str) -> tuple[RunningService, RunningService]:
    first = services.start(name, env=FAST_LEASES)
    return first, services.start_instance(name, free_port(), env=FAST_LEASES)


def database_url(stack: Stack, service: str) -> str:
    return stack.service_env_extra[f"CONCORD_{service.upper()}_DATABASE_URL"]


def query(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql).fetchall())


async def test_two_inventory_instances_never_oversell(
    services: ServiceRunner, nats_client: Client
) -> None:
    first, second = two_instances(services, "inventory")
    pid = await create_product(first.address, stock=5)
    watcher = StreamWatcher(nats_client, "SHOP_INVENTORY_EVENTS")
    orders = [f"ord_race{i}" for i in range(60)]
    await asyncio.gather(*(send(nats_client, reserve(o, pid, 1)) for o in orders))
    await watcher.wait_for_total(
        (inventory_events.StockReserved, inventory_events.StockUnavailable), len(orders)
    )
    assert len(watcher.of_type(inventory_events.StockReserved)) == 5
    assert len(watcher.of_type(inventory_events.StockUnavailable)) == 55
    for instance in (first, second):
        p = await product(instance.address, pid)
        assert (p.stock_on_hand, p.stock_reserved, p.stock_available) == (5, 5, 0)


async def test_two_payments_instances_never_exceed_the_credit_limit(
    services: ServiceRunner, nats_client: Client
) -> None:
    _, second = two_instances(services, "payments")
    async with grpc.aio.insecure_channel(second.address) as ch:
        stub = payments_service_pb2_grpc.PaymentsServiceStub(ch)
        await stub.OpenAccount(
            payments_pb.OpenAccountRequest(
                customer_id="alice", credit_limit_minor=10_000, currency_code="USD"
            ),
            timeout=T,
        )
        watcher = StreamWatcher(nats_client, "SHOP_PAYMENTS_EVENTS")
        orders = [f"ord_{i}" for i in range(40)]
        await asyncio.gather(*(send(nats_client, authorize(o, 1_000)) for o in orders))
        await watcher.wait_for_total(
            (payment_events.PaymentAuthorized, payment_events.PaymentDeclined), len(orders)
        )
        assert len(watcher.of_type(payment_events.PaymentAuthorized)) == 10
        assert len(watcher.of_type(payment_events.PaymentDeclined)) == 30
        account = await stub.GetAccount(payments_pb.GetAccountRequest(customer_id="alice"))
        assert account.account.available_minor == 0


async def create_products(address: str, prefix: str, count: int) -> None:
    async with grpc.aio.insecure_channel(address) as ch:
        stub = inventory_service_pb2_grpc.InventoryServiceStub(ch)
        for i in range(count):
            await stub.CreateProduct(
                inventory_pb.CreateProductRequest(
                    sku=f"{prefix}-{i}",
                    name="Widget",
                    unit_price_minor=10,
                    currency_code="USD",
                    initial_stock=1,
                ),
                timeout=T,
            )


async def published_as_staged(url: str, watcher: StreamWatcher) -> list[str]:
    """Waits until the stream holds every outbox row; returns the stream's message ids."""
    staged = [str(row[0]) for row in query(url, "SELECT message_id FROM outbox ORDER BY seq")]
    await watcher.wait_for_total((inventory_events.ProductCreated,), len(staged))
    stream = [seen.message_id for seen in watcher.seen]
    # Each row once: no duplicate reached the stream, none is missing. Not in `seq` order: two
    # instances commit concurrently, so a row may become visible after one with a higher `seq`
    # was published; each aggregate's rows commit one after another, so its order holds.
    assert len(stream) == len(set(stream))
    assert sorted(stream) == sorted(staged)
    return stream


def lease_holder_address(url: str) -> str:
    """The address of the instance holding the relay's lease (holders are `host/address`)."""
    [(holder,)] = query(url, "SELECT holder FROM leases WHERE name = 'outbox-relay'")
    return str(holder).rsplit("/", 1)[1]


async def test_two_relays_publish_each_row_once_in_order_and_one_takes_over_from_a_kill(
    services: ServiceRunner, stack: Stack, nats_client: Client
) -> None:
    url = database_url(stack, "inventory")
    first, second = two_instances(services, "inventory")
    watcher = StreamWatcher(nats_client, "SHOP_INVENTORY_EVENTS")
    await asyncio.gather(
        create_products(first.address, "a", 15), create_products(second.address, "b", 15)
    )
    assert len(await published_as_staged(url, watcher)) == 30

    holder_address = lease_holder_address(url)
    by_address = {first.address: first, second.address: second}
    assert holder_address in by_address  # one relay holds the lease, and it is one of ours
    holder = by_address.pop(holder_address)
    [survivor] = by_address.values()
    writing = asyncio.ensure_future(create_products(survivor.address, "c", 20))
    await asyncio.sleep(0.1)
    holder.kill()  # kill -9, mid-stream
    await writing
    assert len(await published_as_staged(url, watcher)) == 50
    until(
        lambda: lease_holder_address(url),
        lambda address: address == survivor.address,
        timeout_s=30,
        what="the survivor holds the relay's lease",
    )
