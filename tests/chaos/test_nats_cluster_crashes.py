"""The shop on a three-node JetStream cluster, streams at three replicas, each service on its
own PostgreSQL database (the scaled topology's storage and messaging), under a load of
concurrent orders: kill -9 the JetStream meta leader, then the leader of the orders events
stream, each mid-load, and restart them. Every order still ends in exactly one terminal state,
with no event twice in its history, stock and credit balance to the unit, and the restarted
nodes hold every stream up to the leader's last sequence."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from shop.orders.v1 import orders_pb2

from runtime.streams import stream_configs
from tests.support.polling import eventually
from tests.support.processes import ServiceRunner
from tests.support.saga_outcomes import amount_charged, released, settled_once, units_sold
from tests.support.shop import Shop, shop_client
from tools.runner.nats import NatsCluster
from tools.runner.topology import Topology

FAST_REDELIVERY = {"CONCORD_CONSUMER_ACK_WAIT_S": "2", "CONCORD_CONSUMER_IDLE_CHECK_S": "1"}
PATIENT_SAGA = {"CONCORD_ORDERS_STEP_TIMEOUT_S": "120"}
"""Elections take seconds, but on a busy machine a saga step must not time out and reject
an order that would have gone through: the outcomes below are exact."""
ORDERS_EVENTS = "SHOP_ORDERS_EVENTS"
ELECTION_WAIT_S = 30.0
CATCH_UP_WAIT_S = 60.0
PRICE_MINOR = 1_000
PLENTY = 100
SCARCE = 6
"""Stock of the scarce product: fewer units than its orders ask for, so some are rejected."""


@dataclass(frozen=True)
class Placement:
    customer: str
    product: str
    quantity: int


def order_load(plenty: str, scarce: str) -> list[Placement]:
    """48 orders of one unit in three waves of 16: 12 on the scarce product (6 must be
    rejected for stock), 6 by a customer whose credit covers 2 (4 must be rejected for credit),
    the rest by customers with credit to spare."""
    load = [Placement(f"rich-{i % 5}", plenty, 1) for i in range(30)]
    load += [Placement(f"rich-{i % 5}", scarce, 1) for i in range(12)]
    load += [Placement("poor", plenty, 1) for _ in range(6)]
    return load[0::3] + load[1::3] + load[2::3]  # each wave mixes all three kinds


async def place_wave(shop: Shop, wave: list[Placement]) -> list[tuple[str, str]]:
    """Places a wave concurrently; (customer, order id) of each."""
    placed = await asyncio.gather(
        *(shop.place(p.customer, [(p.product, p.quantity)]) for p in wave)
    )
    return [(order.customer_id, order.order_id) for order in placed]


async def kill_and_restart(cluster: NatsCluster, server_name: str) -> None:
    """kill -9 a node, wait until the other two have elected whatever it led, restart it."""
    cluster.kill_node(server_name)
    survivor = await asyncio.to_thread(cluster.wait_for_meta_leader, ELECTION_WAIT_S)
    assert survivor != server_name
    await asyncio.to_thread(cluster.start_node, server_name)


@pytest.fixture
def storage() -> str:
    """The scaled topology's storage: every service on its own PostgreSQL database."""
    return "postgresql"


async def test_shop_survives_the_loss_of_nats_leaders_under_load(
    storage: str, cluster_services: ServiceRunner, nats_cluster: NatsCluster, topology: Topology
) -> None:
    cluster_services.start("inventory", env=FAST_REDELIVERY)
    cluster_services.start("payments", env=FAST_REDELIVERY)
    cluster_services.start("orders", env={**FAST_REDELIVERY, **PATIENT_SAGA})
    async with shop_client(topology) as shop:
        plenty = await shop.product(stock=PLENTY, price_minor=PRICE_MINOR)
        scarce = await shop.product(stock=SCARCE, price_minor=PRICE_MINOR)
        limits = {**{f"rich-{i}": 100 * PRICE_MINOR for i in range(5)}, "poor": 2 * PRICE_MINOR}
        for customer, limit in limits.items():
            await shop.account(customer, limit)
        load = order_load(plenty, scarce)
        waves = [load[:16], load[16:32], load[32:]]

        placed = await place_wave(shop, waves[0])
        meta_leader = await asyncio.to_thread(nats_cluster.wait_for_meta_leader)
        await kill_and_restart(nats_cluster, meta_leader)  # while wave 1's sagas run
        placed += await place_wave(shop, waves[1])
        stream_leader = await asyncio.to_thread(
            nats_cluster.wait_for_stream_leader, ORDERS_EVENTS, ELECTION_WAIT_S
        )
        nats_cluster.kill_node(stream_leader)  # while wave 2's sagas run
        placed += await place_wave(shop, waves[2])
        await asyncio.to_thread(nats_cluster.start_node, stream_leader)

        orders = [await settled_once(shop, customer, order_id) for customer, order_id in placed]
        assert len({o.order_id for o in orders}) == len(load)
        rejected = [o for o in orders if o.status == orders_pb2.ORDER_STATUS_REJECTED]
        assert sum("insufficient stock" in o.rejection_reason for o in rejected) == 12 - SCARCE
        assert sum("insufficient credit" in o.rejection_reason for o in rejected) == 4
        assert len(rejected) == 12 - SCARCE + 4
        confirmed = [o for o in orders if o.status == orders_pb2.ORDER_STATUS_CONFIRMED]
        assert len(confirmed) + len(rejected) == len(load)

        for product, stock in ((plenty, PLENTY), (scarce, SCARCE)):
            held = await released(shop, product)
            assert held.stock_on_hand == stock - units_sold(orders, product)
        for customer, limit in limits.items():
            credit = await shop.credit(customer)
            assert credit.available_minor == limit - amount_charged(orders, customer)

    streams = [str(config.name) for config in stream_configs()]
    await eventually(
        lambda: asyncio.to_thread(lambda: {s: nats_cluster.last_sequences(s) for s in streams}),
        lambda seen: (
            all(len(set(by_node.values())) == 1 for by_node in seen.values())
            and all(len(by_node) == len(nats_cluster.nodes) for by_node in seen.values())
        ),
        CATCH_UP_WAIT_S,
        "every node at the leader's last sequence of every stream",
    )
