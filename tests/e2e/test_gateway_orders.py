"""The order flow a client sees through the gateway: REST and gRPC, with the customer taken
from the token. Real NATS, inventory, payments, orders and Envoy, on free ports."""

from __future__ import annotations

import json
import subprocess

from tests.support.gateway import admin_token, call, descriptor_set_path, token_for
from tests.support.orders_through_gateway import place_order, stock_and_credit, wait_for_status
from tests.support.processes import ServiceRunner
from tools.runner.binaries import binary
from tools.runner.gateway import Gateway


def start_shop(services: ServiceRunner) -> None:
    services.start_shop()


def test_order_is_placed_confirmed_listed_cancelled_with_its_history(
    services: ServiceRunner, gateway: Gateway
) -> None:
    start_shop(services)
    product_id = stock_and_credit(gateway, "alice")
    token = token_for("alice")

    placed = place_order(gateway, token, product_id)
    assert placed["status"] == "ORDER_STATUS_PENDING"
    confirmed = wait_for_status(gateway, token, placed["orderId"], "ORDER_STATUS_CONFIRMED")
    assert (confirmed["customerId"], confirmed["totalMinor"]) == ("alice", "2500")

    listed = call(gateway, "GET", "/v1/orders?pageSize=10", token=token).json()
    assert [o["orderId"] for o in listed["orders"]] == [placed["orderId"]]

    cancel = call(
        gateway,
        "POST",
        f"/v1/orders/{placed['orderId']}:cancel",
        token=token,
        body={"reason": "changed my mind"},
    )
    assert cancel.status == 200, cancel.body
    assert cancel.json()["order"]["status"] == "ORDER_STATUS_CANCELLING"
    wait_for_status(gateway, token, placed["orderId"], "ORDER_STATUS_CANCELLED")

    history = call(gateway, "GET", f"/v1/orders/{placed['orderId']}/events", token=token)
    kinds = [next(iter(event)) for event in history.json()["events"]]
    assert kinds[0] == "orderPlaced"
    assert "orderConfirmed" in kinds
    assert kinds[-1] == "orderCancelled"


def test_another_customers_order_is_not_found(services: ServiceRunner, gateway: Gateway) -> None:
    start_shop(services)
    product_id = stock_and_credit(gateway, "alice")
    order_id = place_order(gateway, token_for("alice"), product_id)["orderId"]
    bob = token_for("bob")

    for method, path in (
        ("GET", f"/v1/orders/{order_id}"),
        ("GET", f"/v1/orders/{order_id}/events"),
        ("POST", f"/v1/orders/{order_id}:cancel"),
    ):
        reply = call(gateway, method, path, token=bob, body={} if method == "POST" else None)
        assert (reply.status, reply.json()["code"]) == (404, 5), (path, reply.body)
    assert call(gateway, "GET", "/v1/orders", token=bob).json()["orders"] == []


def test_a_client_cannot_claim_another_customer_id(
    services: ServiceRunner, gateway: Gateway
) -> None:
    start_shop(services)
    product_id = stock_and_credit(gateway, "alice")

    order = place_order(gateway, token_for("alice"), product_id, **{"x-customer-id": "bob"})

    assert order["customerId"] == "alice"
    assert call(gateway, "GET", "/v1/orders", token=token_for("bob")).json()["orders"] == []


def grpcurl(gateway: Gateway, *args: str) -> str:
    result = subprocess.run(
        [
            str(binary("grpcurl")),
            "-plaintext",
            "-H",
            f"authorization: Bearer {token_for('alice')}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_grpcurl_through_the_gateway_reflects_and_places_an_order(
    services: ServiceRunner, gateway: Gateway
) -> None:
    start_shop(services)
    product_id = stock_and_credit(gateway, "alice")
    address = f"127.0.0.1:{gateway.topology.gateway_port}"

    reflected = grpcurl(gateway, address, "list").split()
    described = grpcurl(gateway, address, "describe", "shop.orders.v1.OrdersService")
    placed = json.loads(
        grpcurl(
            gateway,
            "-protoset",
            str(descriptor_set_path()),
            "-d",
            json.dumps({"lines": [{"product_id": product_id, "quantity": 1}]}),
            address,
            "shop.orders.v1.OrdersService/PlaceOrder",
        )
    )

    assert "shop.orders.v1.OrdersService" in reflected
    assert "rpc PlaceOrder" in described
    order_id = placed["order"]["orderId"]
    confirmed = wait_for_status(gateway, token_for("alice"), order_id, "ORDER_STATUS_CONFIRMED")
    assert confirmed["customerId"] == "alice"


def test_a_payment_and_credit_account_are_seen_by_their_customer_and_admins_only(
    services: ServiceRunner, gateway: Gateway
) -> None:
    start_shop(services)
    product_id = stock_and_credit(gateway, "alice")
    alice, bob = token_for("alice"), token_for("bob")
    order_id = place_order(gateway, alice, product_id)["orderId"]
    wait_for_status(gateway, alice, order_id, "ORDER_STATUS_CONFIRMED")

    own = call(gateway, "GET", f"/v1/payments/{order_id}", token=alice)
    by_admin = call(gateway, "GET", f"/v1/payments/{order_id}", token=admin_token())
    by_bob = call(gateway, "GET", f"/v1/payments/{order_id}", token=bob)
    account_by_bob = call(gateway, "GET", "/v1/payments/accounts/alice", token=bob)

    assert own.json()["payment"]["customerId"] == "alice"
    assert by_admin.json()["payment"]["customerId"] == "alice"
    assert (by_bob.status, by_bob.json()["code"]) == (404, 5)
    assert (account_by_bob.status, account_by_bob.json()["code"]) == (404, 5)
