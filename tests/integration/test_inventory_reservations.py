"""Inventory over JetStream: reservation commands in, outcome events out, with real
nats-server and SQLite; redeliveries and concurrency change nothing they should not."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import nats
import pytest
from nats.aio.client import Client
from shop.inventory.v1 import commands_pb2, events_pb2, inventory_pb2, inventory_service_pb2_grpc
from shop.inventory.v1 import inventory_service_pb2 as pb

from tests.support.bus import StreamWatcher, send
from tests.support.grpc_client import CALL_TIMEOUT_S as T
from tests.support.processes import ServiceRunner
from tools.runner.nats import NatsServer

pytestmark = pytest.mark.usefixtures("storage")
"""Every test on SQLite and on PostgreSQL (the services' CONCORD_<SERVICE>_DATABASE_URL)."""

EVENTS = "SHOP_INVENTORY_EVENTS"


def cmd_id() -> str:
    return str(uuid.uuid4())


def reserve(order_id: str, product_id: str, quantity: int) -> commands_pb2.ReserveStock:
    return commands_pb2.ReserveStock(
        command_id=cmd_id(),
        order_id=order_id,
        lines=[inventory_pb2.StockLine(product_id=product_id, quantity=quantity)],
    )


async def create_product(address: str, stock: int, sku: str = "SKU-R") -> str:
    async with grpc.aio.insecure_channel(address) as ch:
        stub = inventory_service_pb2_grpc.InventoryServiceStub(ch)
        reply = await stub.CreateProduct(
            pb.CreateProductRequest(
                sku=sku,
                name="Scarce",
                unit_price_minor=10,
                currency_code="USD",
                initial_stock=stock,
            ),
            timeout=T,
        )
        return str(reply.product.product_id)


async def product(address: str, product_id: str) -> inventory_pb2.Product:
    async with grpc.aio.insecure_channel(address) as ch:
        stub = inventory_service_pb2_grpc.InventoryServiceStub(ch)
        return (
            await stub.GetProduct(pb.GetProductRequest(product_id=product_id), timeout=T)
        ).product


async def test_reserve_commit_and_release(services: ServiceRunner, nats_client: Client) -> None:
    inv = services.start("inventory")
    pid = await create_product(inv.address, stock=5)
    watcher = StreamWatcher(nats_client, EVENTS)

    await send(nats_client, reserve("ord_1", pid, 3))
    [reserved] = await watcher.wait_for(events_pb2.StockReserved, "ord_1")
    assert [(x.product_id, x.quantity) for x in reserved.lines] == [(pid, 3)]
    p = await product(inv.address, pid)
    assert (p.stock_on_hand, p.stock_reserved, p.stock_available) == (5, 3, 2)

    await send(nats_client, commands_pb2.CommitReservation(command_id=cmd_id(), order_id="ord_1"))
    await watcher.wait_for(events_pb2.ReservationCommitted, "ord_1")
    p = await product(inv.address, pid)
    assert (p.stock_on_hand, p.stock_reserved) == (2, 0)

    await send(
        nats_client,
        commands_pb2.ReleaseStock(command_id=cmd_id(), order_id="ord_1", reason="cancelled"),
    )
    [released] = await watcher.wait_for(events_pb2.StockReleased, "ord_1")
    assert released.lines[0].quantity == 3
    p = await product(inv.address, pid)
    assert (p.stock_on_hand, p.stock_reserved) == (5, 0)


async def test_all_lines_or_none(services: ServiceRunner, nats_client: Client) -> None:
    inv = services.start("inventory")
    plenty = await create_product(inv.address, stock=100, sku="PLENTY")
    scarce = await create_product(inv.address, stock=1, sku="SCARCE")
    watcher = StreamWatcher(nats_client, EVENTS)
    await send(
        nats_client,
        commands_pb2.ReserveStock(
            command_id=cmd_id(),
            order_id="ord_2",
            lines=[
                inventory_pb2.StockLine(product_id=plenty, quantity=10),
                inventory_pb2.StockLine(product_id=scarce, quantity=2),
                inventory_pb2.StockLine(product_id="prd_unknown", quantity=1),
            ],
        ),
    )
    [unavailable] = await watcher.wait_for(events_pb2.StockUnavailable, "ord_2")
    assert set(unavailable.product_ids) == {scarce, "prd_unknown"}
    assert "insufficient stock" in unavailable.reason and "unknown product" in unavailable.reason
    assert (await product(inv.address, plenty)).stock_reserved == 0


async def test_release_before_reserve_leaves_nothing_held(
    services: ServiceRunner, nats_client: Client
) -> None:
    """A saga that gave up releases first; the late ReserveStock must not hold stock."""
    inv = services.start("inventory")
    pid = await create_product(inv.address, stock=5)
    watcher = StreamWatcher(nats_client, EVENTS)
    await send(
        nats_client,
        commands_pb2.ReleaseStock(command_id=cmd_id(), order_id="ord_late", reason="timeout"),
    )
    await watcher.wait_for(events_pb2.StockReleased, "ord_late")
    await send(nats_client, reserve("ord_late", pid, 2))
    await watcher.wait_for(events_pb2.StockUnavailable, "ord_late")
    assert (await product(inv.address, pid)).stock_reserved == 0


async def test_parallel_reservations_never_oversell(
    services: ServiceRunner, nats_client: Client
) -> None:
    inv = services.start("inventory")
    pid = await create_product(inv.address, stock=5)
    watcher = StreamWatcher(nats_client, EVENTS)
    orders = [f"ord_p{i}" for i in range(40)]
    await asyncio.gather(*(send(nats_client, reserve(o, pid, 1)) for o in orders))
    await watcher.wait_for_total(
        (events_pb2.StockReserved, events_pb2.StockUnavailable), len(orders)
    )
    assert len(watcher.of_type(events_pb2.StockReserved)) == 5
    assert len(watcher.of_type(events_pb2.StockUnavailable)) == 35
    p = await product(inv.address, pid)
    assert (p.stock_reserved, p.stock_available) == (5, 0)


async def test_redelivered_command_reserves_stock_once(
    services: ServiceRunner, nats_client: Client
) -> None:
    """Killed after its transaction committed but before the ack: the redelivery is a no-op."""
    fast_redelivery = {"CONCORD_CONSUMER_ACK_WAIT_S": "1"}
    inv = services.start(
        "inventory",
        env={
            **fast_redelivery,
            "CONCORD_CRASH_AT": "consumer.after_commit:shop.inventory.v1.ReserveStock",
        },
    )
    pid = await create_product(inv.address, stock=5)
    await send(nats_client, reserve("ord_crash", pid, 2))
    for _ in range(600):
        if not inv.process.running():
            break
        await asyncio.sleep(0.05)
    assert not inv.process.running(), "the crash point was not reached"

    inv = services.start("inventory", env=fast_redelivery)
    watcher = StreamWatcher(nats_client, EVENTS)
    await watcher.wait_for(events_pb2.StockReserved, "ord_crash")
    info = await nats_client.jetstream().consumer_info(
        "SHOP_INVENTORY_COMMANDS", "inventory-commands"
    )
    for _ in range(200):  # the redelivery arrives after the ack wait and is acked as a duplicate
        info = await nats_client.jetstream().consumer_info(
            "SHOP_INVENTORY_COMMANDS", "inventory-commands"
        )
        if info.num_ack_pending == 0 and info.num_pending == 0:
            break
        await asyncio.sleep(0.05)
    assert info.num_ack_pending == 0 and info.num_pending == 0
    await watcher.poll()
    assert len(watcher.of_type(events_pb2.StockReserved)) == 1
    assert (await product(inv.address, pid)).stock_reserved == 2


async def test_events_written_while_nats_is_down_arrive_once(
    services: ServiceRunner, nats_server: NatsServer
) -> None:
    """The outbox keeps every event through a NATS outage and publishes each exactly once."""
    inv = services.start("inventory")
    nats_server.stop()
    ids = [await create_product(inv.address, stock=1, sku=f"OUT-{i}") for i in range(5)]
    nats_server.start()

    nc = await nats.connect(nats_server.url)
    try:
        watcher = StreamWatcher(nc, EVENTS)
        created = await watcher.wait_for(events_pb2.ProductCreated, count=5)
        await asyncio.sleep(0.5)
        await watcher.poll()
    finally:
        await nc.close()
    created = watcher.of_type(events_pb2.ProductCreated)
    assert sorted(e.product_id for e in created) == sorted(ids)
    assert len({e.event_id for e in created}) == len(created) == 5
