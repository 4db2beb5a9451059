"""Two instances of a service behind the real gateway, sharing its database and its durable
JetStream consumers, as the scaled topology runs them (docs/deploy.md); on SQLite (two
processes on one file) and on PostgreSQL (one database).

- Two inventory instances race for the last units of a product: each takes ReserveStock
  commands from the one work queue, and the database decides (SQLite's write lock, PostgreSQL's
  SERIALIZABLE transactions): exactly the stock is sold, every other order is REJECTED, and the
  stock never goes below zero.
- One of two orders instances is killed -9 in the middle of a saga (after committing a step,
  before acking it): the other finishes every saga, its own and the dead one's, with nothing
  reserved or charged twice. Redelivery comes from the shared durable consumer; the dead
  instance's outbox rows and saga deadlines from the leases the survivor takes over.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from concord.ops.v1 import ops_service_pb2, ops_service_pb2_grpc

from tests.support.gateway import Reply, admin_token, call, token_for
from tests.support.polling import until
from tests.support.processes import RunningService, ServiceRunner
from tools.runner.gateway import Gateway
from tools.runner.ports import free_port

SETTLE_TIMEOUT_S = 90.0
TERMINAL = ("ORDER_STATUS_CONFIRMED", "ORDER_STATUS_REJECTED")
ONE_AT_A_TIME = {"CONCORD_CONSUMER_FETCH_BATCH": "1", "CONCORD_CONSUMER_ACK_WAIT_S": "2"}
"""Each instance fetches one command at a time, so both get some; a lost ack returns soon."""
CONFIRMED_EVENTS = [
    "orderPlaced",
    "orderStockReserved",
    "orderPaymentAuthorized",
    "orderConfirmed",
]


def create_product(gateway: Gateway, stock: int, price_minor: int) -> str:
    product = {
        "sku": f"LAST-{time.monotonic_ns()}",
        "name": "Last lamp",
        "unitPriceMinor": price_minor,
        "currencyCode": "EUR",
        "initialStock": stock,
    }
    reply = call(gateway, "POST", "/v1/products", token=admin_token(), body=product)
    assert reply.status == 200, reply.body
    return str(reply.json()["product"]["productId"])


def open_account(gateway: Gateway, customer: str, limit_minor: int) -> None:
    account = {"customerId": customer, "creditLimitMinor": limit_minor, "currencyCode": "EUR"}
    reply = call(gateway, "POST", "/v1/payments/accounts", token=admin_token(), body=account)
    assert reply.status == 200, reply.body


def place(
    gateway: Gateway, customer: str, product_id: str, quantity: int = 1, key: str = ""
) -> Reply:
    order = {"lines": [{"productId": product_id, "quantity": quantity}], "idempotencyKey": key}
    return call(gateway, "POST", "/v1/orders", token=token_for(customer), body=order)


def place_as_a_client_would(gateway: Gateway, customer: str, product_id: str) -> str:
    """A POST that reached an instance which then died is a 503: the client places it again
    with the same idempotency key, which can never make a second order."""
    replies = until(
        lambda: place(gateway, customer, product_id, quantity=2, key=f"{customer}-once"),
        lambda reply: reply.status != 503,
        SETTLE_TIMEOUT_S,
        f"{customer}'s order is accepted",
    )
    assert replies.status == 200, replies.body
    return str(replies.json()["order"]["orderId"])


def order_of(gateway: Gateway, customer: str, order_id: str) -> dict[str, Any]:
    reply = call(gateway, "GET", f"/v1/orders/{order_id}", token=token_for(customer))
    assert reply.status == 200, reply.body
    return dict(reply.json()["order"])


def settled(gateway: Gateway, customer: str, order_id: str) -> dict[str, Any]:
    return until(
        lambda: order_of(gateway, customer, order_id),
        lambda order: order["status"] in TERMINAL,
        SETTLE_TIMEOUT_S,
        f"order {order_id} of {customer} settles",
    )


def stock_of(gateway: Gateway, product_id: str) -> tuple[int, int]:
    reply = call(gateway, "GET", f"/v1/products/{product_id}", token=admin_token())
    assert reply.status == 200, reply.body
    product = reply.json()["product"]
    return int(product.get("stockOnHand", 0)), int(product.get("stockReserved", 0))


def available_credit(gateway: Gateway, customer: str) -> int:
    reply = call(gateway, "GET", f"/v1/payments/accounts/{customer}", token=token_for(customer))
    assert reply.status == 200, reply.body
    return int(reply.json()["account"]["availableMinor"])


def event_names(gateway: Gateway, customer: str, order_id: str) -> list[str]:
    reply = call(gateway, "GET", f"/v1/orders/{order_id}/events", token=token_for(customer))
    assert reply.status == 200, reply.body
    return [next(k for k in event if k != "metadata") for event in reply.json()["events"]]


def processed(service: RunningService, durable_prefix: str) -> int:
    """How many messages the instance's consumers named `durable_prefix...` applied."""
    with grpc.insecure_channel(service.address) as channel:
        reply = ops_service_pb2_grpc.OperationsServiceStub(channel).GetDiagnostics(
            ops_service_pb2.GetDiagnosticsRequest(), timeout=5
        )
    return sum(c.processed for c in reply.consumers if c.durable.startswith(durable_prefix))


LAST_UNITS = 3
BUYERS = 12


def test_two_inventory_instances_sell_the_last_units_once(
    storage: str, services: ServiceRunner, gateway: Gateway
) -> None:
    first = services.start("inventory", env=ONE_AT_A_TIME)
    second = services.start_instance("inventory", free_port(), env=ONE_AT_A_TIME)
    services.start("payments")
    services.start("orders")
    product = create_product(gateway, stock=LAST_UNITS, price_minor=500)
    buyers = [f"buyer-{n}" for n in range(BUYERS)]
    for buyer in buyers:
        open_account(gateway, buyer, 10_000)

    with ThreadPoolExecutor(max_workers=BUYERS) as pool:
        replies = list(pool.map(lambda buyer: place(gateway, buyer, product), buyers))
        assert all(reply.status == 200 for reply in replies), [r.body for r in replies]
        ids = [str(reply.json()["order"]["orderId"]) for reply in replies]
        orders = list(pool.map(lambda pair: settled(gateway, *pair), zip(buyers, ids, strict=True)))

    statuses = [order["status"] for order in orders]
    assert statuses.count("ORDER_STATUS_CONFIRMED") == LAST_UNITS, statuses
    assert statuses.count("ORDER_STATUS_REJECTED") == BUYERS - LAST_UNITS, statuses
    until(
        lambda: stock_of(gateway, product),
        lambda stock: stock == (0, 0),
        SETTLE_TIMEOUT_S,
        "every unit sold, nothing left reserved",
    )
    for buyer, order in zip(buyers, orders, strict=True):
        spent = 500 if order["status"] == "ORDER_STATUS_CONFIRMED" else 0
        assert available_credit(gateway, buyer) == 10_000 - spent, (buyer, order)
    # Both instances took part: the race was between two processes, not inside one.
    assert processed(first, "inventory-commands") > 0
    assert processed(second, "inventory-commands") > 0


ORDERS = 10
CRASH_AFTER_STEP = {
    **ONE_AT_A_TIME,
    "CONCORD_CRASH_AT": "consumer.after_commit:shop.inventory.v1.StockReserved",
}
"""The crashing instance dies after committing a saga step and before acking its message."""


def test_killed_orders_instance_leaves_every_saga_to_the_other(
    storage: str, services: ServiceRunner, gateway: Gateway
) -> None:
    services.start("inventory")
    services.start("payments")
    doomed = services.start("orders", env=CRASH_AFTER_STEP)
    services.start_instance("orders", free_port(), env=ONE_AT_A_TIME)
    product = create_product(gateway, stock=100, price_minor=1_000)
    customers = [f"shopper-{n}" for n in range(ORDERS)]
    for customer in customers:
        open_account(gateway, customer, 10_000)

    placed = [(c, place_as_a_client_would(gateway, c, product)) for c in customers]
    until(
        lambda: doomed.process.running(),
        lambda running: not running,
        SETTLE_TIMEOUT_S,
        "the crashing orders instance reached its crash point",
    )

    for customer, order_id in placed:
        order = settled(gateway, customer, order_id)
        assert order["status"] == "ORDER_STATUS_CONFIRMED", order
        assert event_names(gateway, customer, order_id) == CONFIRMED_EVENTS
        assert available_credit(gateway, customer) == 8_000
    until(
        lambda: stock_of(gateway, product),
        lambda stock: stock == (100 - 2 * ORDERS, 0),
        SETTLE_TIMEOUT_S,
        "every confirmed order's stock committed exactly once",
    )
