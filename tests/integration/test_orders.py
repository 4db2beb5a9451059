"""Orders with real inventory, payments, nats-server and SQLite: the place-order saga to each
end, the cancellation choreography, idempotency, history and temporal queries."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from shop.orders.v1 import orders_pb2
from shop.orders.v1 import orders_service_pb2 as pb

from tests.support.grpc_client import CALL_TIMEOUT_S as T
from tests.support.grpc_client import field_violations
from tests.support.processes import ServiceRunner
from tests.support.shop import Shop, as_customer, shop_client
from tools.runner.topology import Topology

pytestmark = pytest.mark.usefixtures("storage")
"""Every test on SQLite and on PostgreSQL (the services' CONCORD_<SERVICE>_DATABASE_URL)."""

S = orders_pb2


@pytest.fixture
async def shop(services: ServiceRunner, topology: Topology) -> AsyncIterator[Shop]:
    services.start_shop()
    async with shop_client(topology) as client:
        yield client


async def test_order_is_confirmed_and_stock_and_credit_are_drawn(shop: Shop) -> None:
    product = await shop.product(stock=10, price_minor=1_500)
    await shop.account("alice", 10_000)
    placed = await shop.place("alice", [(product, 3)])
    assert placed.status == S.ORDER_STATUS_PENDING and placed.total_minor == 4_500

    order = await shop.settled("alice", placed.order_id)
    assert order.status == S.ORDER_STATUS_CONFIRMED
    stock = await shop.stock(product)
    assert (stock.stock_on_hand, stock.stock_reserved) == (7, 0) or (
        stock.stock_on_hand,
        stock.stock_reserved,
    ) == (10, 3)
    assert (await shop.credit("alice")).available_minor == 5_500
    assert await shop.event_types("alice", placed.order_id) == [
        "order_placed",
        "order_stock_reserved",
        "order_payment_authorized",
        "order_confirmed",
    ]


async def test_declined_payment_releases_stock_and_rejects_with_reason(shop: Shop) -> None:
    product = await shop.product(stock=5, price_minor=1_000)
    await shop.account("bob", 500)
    placed = await shop.place("bob", [(product, 2)])
    order = await shop.settled("bob", placed.order_id)
    assert order.status == S.ORDER_STATUS_REJECTED
    assert "insufficient credit" in order.rejection_reason
    stock = await shop.stock(product)
    assert (stock.stock_on_hand, stock.stock_reserved) == (5, 0)
    assert (await shop.credit("bob")).available_minor == 500


async def test_shortage_rejects_without_charging(shop: Shop) -> None:
    product = await shop.product(stock=1)
    await shop.account("carol", 100_000)
    order = await shop.settled("carol", (await shop.place("carol", [(product, 2)])).order_id)
    assert order.status == S.ORDER_STATUS_REJECTED
    assert "stock unavailable" in order.rejection_reason
    assert (await shop.credit("carol")).available_minor == 100_000


async def test_cancelled_order_returns_stock_and_credit(shop: Shop) -> None:
    product = await shop.product(stock=4, price_minor=2_000)
    await shop.account("dave", 10_000)
    placed = await shop.place("dave", [(product, 2)])
    await shop.settled("dave", placed.order_id)

    reply = await shop.orders.CancelOrder(
        pb.CancelOrderRequest(order_id=placed.order_id, reason="changed my mind"),
        timeout=T,
        metadata=as_customer("dave"),
    )
    assert reply.order.status == S.ORDER_STATUS_CANCELLING
    order = await shop.settled("dave", placed.order_id, (S.ORDER_STATUS_CANCELLED,))
    assert order.status == S.ORDER_STATUS_CANCELLED
    stock = await shop.stock(product)
    assert (stock.stock_on_hand, stock.stock_reserved) == (4, 0)
    assert (await shop.credit("dave")).available_minor == 10_000
    assert (await shop.event_types("dave", placed.order_id))[-4:] in (
        [
            "order_cancellation_requested",
            "order_stock_released",
            "order_payment_refunded",
            "order_cancelled",
        ],
        [
            "order_cancellation_requested",
            "order_payment_refunded",
            "order_stock_released",
            "order_cancelled",
        ],
    )


async def test_only_confirmed_orders_can_be_cancelled(shop: Shop) -> None:
    product = await shop.product(stock=1)
    await shop.account("erin", 1)
    rejected = await shop.settled("erin", (await shop.place("erin", [(product, 1)])).order_id)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.orders.CancelOrder(
            pb.CancelOrderRequest(order_id=rejected.order_id),
            timeout=T,
            metadata=as_customer("erin"),
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "REJECTED" in (err.value.details() or "")


async def test_same_idempotency_key_returns_the_same_order(shop: Shop) -> None:
    product = await shop.product(stock=10)
    await shop.account("frank", 100_000)
    first = await shop.place("frank", [(product, 1)], key="checkout-42")
    second = await shop.place("frank", [(product, 1)], key="checkout-42")
    assert first.order_id == second.order_id
    await shop.settled("frank", first.order_id)
    assert (await shop.stock(product)).stock_available == 9


async def test_orders_are_private_to_their_customer(shop: Shop) -> None:
    product = await shop.product(stock=10)
    await shop.account("gina", 100_000)
    placed = await shop.place("gina", [(product, 1)])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.get("mallory", placed.order_id)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.orders.GetOrder(pb.GetOrderRequest(order_id=placed.order_id), timeout=T)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_bad_orders_name_every_problem(shop: Shop) -> None:
    product = await shop.product(stock=10)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.place("hank", [])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.place("hank", [(product, 0), (product, 1), ("", 1)])
    assert set(field_violations(err.value)) == {"lines[0].quantity", "lines[2].product_id"}
    # A product named twice is the order's own rule, checked once the contract's rules hold.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.place("hank", [(product, 1), (product, 2)])
    assert field_violations(err.value) == {
        "lines[1].product_id": "appears twice; one line per product"
    }
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.place("hank", [(product, 1), ("prd_nope", 1)])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(err.value) == {"lines[1].product_id": "unknown product prd_nope"}


async def test_history_and_temporal_queries(shop: Shop) -> None:
    product = await shop.product(stock=10)
    await shop.account("ivy", 100_000)
    placed = await shop.place("ivy", [(product, 1)])
    placed_at = Timestamp()
    placed_at.CopyFrom(placed.create_time)
    current = await shop.settled("ivy", placed.order_id)
    assert current.version == 4

    at_v1 = await shop.get("ivy", placed.order_id, as_of_version=1)
    assert (at_v1.status, at_v1.version) == (S.ORDER_STATUS_PENDING, 1)
    at_time = await shop.get("ivy", placed.order_id, as_of_time=placed_at)
    assert (at_time.status, at_time.version) == (S.ORDER_STATUS_PENDING, 1)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.get("ivy", placed.order_id, as_of_version=99)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_list_pages_newest_first_and_survives_a_rebuild(shop: Shop) -> None:
    product = await shop.product(stock=100)
    await shop.account("jo", 1_000_000)
    ids = [(await shop.place("jo", [(product, 1)])).order_id for _ in range(5)]
    for order_id in ids:
        await shop.settled("jo", order_id)

    async def all_pages() -> list[str]:
        seen, token = [], ""
        while True:
            page = await shop.orders.ListOrders(
                pb.ListOrdersRequest(page_size=2, page_token=token),
                timeout=T,
                metadata=as_customer("jo"),
            )
            seen += [o.order_id for o in page.orders]
            if not (token := page.next_page_token):
                return seen

    assert await all_pages() == list(reversed(ids))
    rebuilt = await shop.admin.RebuildReadModels(pb.RebuildReadModelsRequest(), timeout=T)
    assert rebuilt.orders_rebuilt == 5 and rebuilt.events_replayed == 20
    assert await all_pages() == list(reversed(ids))
    assert all(o.status == S.ORDER_STATUS_CONFIRMED for o in [await shop.get("jo", i) for i in ids])


def forged_token(position: str) -> str:
    """A page token as the old, unsigned format made them: base64 of a JSON position."""
    return base64.urlsafe_b64encode(position.encode()).decode()


async def test_forged_page_tokens_are_invalid_not_internal(shop: Shop) -> None:
    for position in ("[1" + "0" * 400 + ', "x"]', '[NaN, "x"]', '[1e999, "x"]', '[1.0, "x"]'):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await shop.orders.ListOrders(
                pb.ListOrdersRequest(page_token=forged_token(position)),
                timeout=T,
                metadata=as_customer("omar"),
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, position
        assert set(field_violations(err.value)) == {"page_token"}


async def test_impossible_as_of_times_are_invalid_not_internal(shop: Shop) -> None:
    bad_times = {
        "as_of_time.seconds": [Timestamp(seconds=2**62), Timestamp(seconds=-(2**62))],
        "as_of_time.nanos": [Timestamp(seconds=1, nanos=-1), Timestamp(nanos=2_000_000_000)],
    }
    for field, times in bad_times.items():
        for as_of_time in times:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await shop.get("omar", "ord_any", as_of_time=as_of_time)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, as_of_time
            assert set(field_violations(err.value)) == {field}
    for edge in (Timestamp(seconds=-62_135_596_800), Timestamp(seconds=253_402_300_799)):
        with pytest.raises(grpc.aio.AioRpcError) as err:  # valid times: the order is unknown
            await shop.get("omar", "ord_any", as_of_time=edge)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_payments_silence_times_out_into_a_rejection(
    services: ServiceRunner, topology: Topology
) -> None:
    """Payments never answers: the step deadline compensates, and the order still settles."""
    services.start("inventory")
    services.start(
        "orders",
        env={"CONCORD_ORDERS_STEP_TIMEOUT_S": "1", "CONCORD_ORDERS_SAGA_POLL_INTERVAL_S": "0.2"},
    )
    async with shop_client(topology) as shop:
        product = await shop.product(stock=3)
        placed = await shop.place("kim", [(product, 2)])
        order = await shop.settled("kim", placed.order_id)
        assert order.status == S.ORDER_STATUS_REJECTED
        assert "timed out waiting for payments" in order.rejection_reason
        assert (await shop.stock(product)).stock_reserved == 0


async def test_cancellation_waits_for_payments_and_is_reported_while_it_waits(
    services: ServiceRunner, topology: Topology
) -> None:
    services.start("inventory")
    payments = services.start("payments")
    orders = services.start(
        "orders",
        env={
            "CONCORD_ORDERS_CANCELLATION_ALERT_S": "0.5",
            "CONCORD_ORDERS_SAGA_POLL_INTERVAL_S": "0.2",
        },
    )
    async with shop_client(topology) as shop:
        product = await shop.product(stock=5, price_minor=1_000)
        await shop.account("lena", 10_000)
        placed = await shop.place("lena", [(product, 1)])
        await shop.settled("lena", placed.order_id)
        payments.stop()
        await shop.orders.CancelOrder(
            pb.CancelOrderRequest(order_id=placed.order_id), timeout=T, metadata=as_customer("lena")
        )

        log_path = orders.process.log_path
        for _ in range(200):
            if "cancellation_overdue" in log_path.read_text():
                break
            await asyncio.sleep(0.05)
        overdue = [
            line for line in log_path.read_text().splitlines() if "cancellation_overdue" in line
        ]
        assert len(overdue) == 1 and placed.order_id in overdue[0]
        assert (await shop.get("lena", placed.order_id)).status == S.ORDER_STATUS_CANCELLING

        services.start("payments")  # the refund command waited in JetStream
        order = await shop.settled("lena", placed.order_id, (S.ORDER_STATUS_CANCELLED,))
        assert order.status == S.ORDER_STATUS_CANCELLED
        assert (await shop.credit("lena")).available_minor == 10_000
