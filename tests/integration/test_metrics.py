"""Each metric moves when its cause happens, read from the real /metrics endpoint of a real
process (docs/observability.md, "Metrics")."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from nats.aio.client import Client
from shop.inventory.v1 import commands_pb2, inventory_service_pb2, inventory_service_pb2_grpc

from runtime.messages import HEADER_MSG_ID, HEADER_TYPE
from tests.support.bus import send
from tests.support.grpc_client import CALL_TIMEOUT_S as T
from tests.support.metrics import WAIT_S, sample, wait_for_sample
from tests.support.polling import eventually
from tests.support.processes import ServiceRunner
from tests.support.shop import Shop, shop_client
from tools.runner.nats import NatsServer
from tools.runner.topology import Topology

COMMANDS = {"consumer": "inventory-commands", "stream": "SHOP_INVENTORY_COMMANDS"}
PRICING = {
    "CONCORD_PRICING_DEADLINE_S": "0.5",
    "CONCORD_PRICING_BREAKER_FAIL_MAX": "3",
    "CONCORD_PRICING_BREAKER_RESET_TIMEOUT_S": "30",
}


@pytest.fixture
async def shop(topology: Topology) -> AsyncIterator[Shop]:
    async with shop_client(topology) as client:
        yield client


async def test_an_rpc_is_counted_by_method_and_code(
    services: ServiceRunner, topology: Topology
) -> None:
    inventory = services.start("inventory")
    url = topology.metrics_url("inventory")
    method = "/shop.inventory.v1.InventoryService/GetProduct"
    assert await sample(url, "concord_rpc_requests_total", method=method, code="NOT_FOUND") is None

    async with grpc.aio.insecure_channel(inventory.address) as channel:
        stub = inventory_service_pb2_grpc.InventoryServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetProduct(
                inventory_service_pb2.GetProductRequest(product_id="prd_missing"), timeout=T
            )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    # An aborted call's status reaches the client before the interceptor around it counts it.
    labels = {"method": method, "code": "NOT_FOUND"}
    await wait_for_sample(url, "concord_rpc_requests_total", 1, **labels)
    await wait_for_sample(url, "concord_rpc_duration_seconds_count", 1, **labels)


@pytest.mark.parametrize("process", ["registry", "paygate"])
async def test_the_registry_and_paygate_count_their_rpcs_too(
    services: ServiceRunner, topology: Topology, process: str
) -> None:
    running = services.start(process)
    url = topology.metrics_url(process)
    labels = {"method": "/grpc.health.v1.Health/Check", "code": "OK"}
    before = await sample(url, "concord_rpc_requests_total", **labels) or 0  # readiness checks

    async with grpc.aio.insecure_channel(running.address) as channel:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=T)
    assert await sample(url, "concord_rpc_requests_total", **labels) == before + 1


async def test_a_poison_message_counts_a_dead_letter(
    services: ServiceRunner, topology: Topology, nats_client: Client
) -> None:
    services.start("inventory")
    url = topology.metrics_url("inventory")
    await wait_for_sample(url, "concord_dead_letters_total", 0, **COMMANDS)

    await nats_client.jetstream().publish(
        "shop.inventory.commands.ReserveStock",
        b"\xff\xfe not protobuf",
        headers={
            HEADER_MSG_ID: str(uuid.uuid4()),
            HEADER_TYPE: commands_pb2.ReserveStock.DESCRIPTOR.full_name,
        },
    )
    await wait_for_sample(url, "concord_dead_letters_total", 1, **COMMANDS)


async def test_a_failing_handler_counts_redeliveries_then_a_dead_letter(
    services: ServiceRunner, topology: Topology, nats_client: Client
) -> None:
    services.start(
        "inventory",
        env={
            "CONCORD_FAIL_AT": "consumer.handler:shop.inventory.v1.ReleaseStock",
            "CONCORD_CONSUMER_MAX_DELIVER": "3",
        },
    )
    url = topology.metrics_url("inventory")
    await send(
        nats_client, commands_pb2.ReleaseStock(command_id=str(uuid.uuid4()), order_id="ord_doomed")
    )
    await wait_for_sample(url, "concord_dead_letters_total", 1, **COMMANDS)
    assert await sample(url, "concord_consumer_redeliveries_total", **COMMANDS) == 2


async def test_a_stopped_consumer_shows_its_lag(
    services: ServiceRunner, topology: Topology, nats_client: Client
) -> None:
    services.start("inventory", env={"CONCORD_FAIL_AT": "consumer.fetch:inventory-commands"})
    url = topology.metrics_url("inventory")
    await wait_for_sample(url, "concord_consumer_lag", 0, **COMMANDS)

    for n in range(3):
        await send(
            nats_client, commands_pb2.ReserveStock(command_id=str(uuid.uuid4()), order_id=f"o{n}")
        )
    await wait_for_sample(url, "concord_consumer_lag", 3, **COMMANDS)

    services.restart("inventory")  # the consumer fetches again: the lag drains
    await wait_for_sample(url, "concord_consumer_lag", 0, **COMMANDS)


async def test_an_outbox_that_cannot_publish_shows_its_backlog_and_age(
    services: ServiceRunner, topology: Topology, nats_server: NatsServer, shop: Shop
) -> None:
    services.start("inventory")
    url = topology.metrics_url("inventory")
    await wait_for_sample(url, "concord_outbox_backlog", 0)
    assert await sample(url, "concord_outbox_oldest_unsent_age_seconds") == 0

    nats_server.stop()
    await shop.product(stock=1)  # commits ProductCreated to the outbox; the relay cannot send it
    await eventually(
        lambda: sample(url, "concord_outbox_backlog"),
        lambda backlog: backlog is not None and backlog >= 1,
        WAIT_S,
        "outbox backlog while NATS is down",
    )
    await eventually(
        lambda: sample(url, "concord_outbox_oldest_unsent_age_seconds"),
        lambda age: age is not None and age >= 1.0,
        WAIT_S,
        "age of the oldest unsent row",
    )
    # what needs JetStream says it could not be read, and the scrape still answers
    failed = {"probe": "consumer:inventory-commands"}
    assert await sample(url, "concord_metrics_probe_failed", **failed) == 1

    nats_server.start()
    await wait_for_sample(url, "concord_outbox_backlog", 0)
    assert await sample(url, "concord_outbox_oldest_unsent_age_seconds") == 0
    await wait_for_sample(url, "concord_metrics_probe_failed", 0, **failed)


async def test_sagas_by_step_and_an_open_breaker(
    services: ServiceRunner, topology: Topology, shop: Shop
) -> None:
    inventory = services.start("inventory")
    services.start("payments")
    services.start("orders", env=PRICING)
    url = topology.metrics_url("orders")
    product = await shop.product(stock=10)
    await shop.account("alice", 100_000)
    await shop.settled("alice", (await shop.place("alice", [(product, 1)])).order_id)
    for step in ("RESERVING", "AUTHORIZING", "COMPENSATING", "COMPENSATION_PENDING"):
        await wait_for_sample(url, "concord_sagas", 0, step=step)
    assert await sample(url, "concord_sagas", step="DONE") is None  # the history: not counted
    assert await sample(url, "concord_compensations_pending", compensation="release_stock") == 0
    assert await sample(url, "concord_breaker_state", callee="inventory", state="CLOSED") == 1

    inventory.stop()
    with pytest.raises(grpc.aio.AioRpcError):
        await shop.place("alice", [(product, 1)])
    assert await sample(url, "concord_breaker_state", callee="inventory", state="OPEN") == 1
    assert await sample(url, "concord_breaker_state", callee="inventory", state="CLOSED") == 0
    placed = "/shop.orders.v1.OrdersService/PlaceOrder"
    assert await sample(url, "concord_rpc_requests_total", method=placed, code="UNAVAILABLE") == 1


async def test_the_retention_job_prunes_published_outbox_rows_and_reports_it(
    services: ServiceRunner, topology: Topology, shop: Shop
) -> None:
    services.start(
        "inventory", {"CONCORD_RETENTION_INTERVAL_S": "0.2", "CONCORD_OUTBOX_RETENTION_S": "0"}
    )
    url = topology.metrics_url("inventory")

    await shop.product(stock=1)  # ProductCreated: staged, published, then pruned

    await eventually(
        lambda: sample(url, "concord_retention_pruned_total", store="outbox"),
        lambda pruned: pruned is not None and pruned >= 1,
        WAIT_S,
        "published outbox rows pruned by the retention job",
    )
    await wait_for_sample(url, "concord_retention_rows", 0, store="outbox")
    assert await sample(url, "concord_retention_pruned_total", store="inbox") == 0
