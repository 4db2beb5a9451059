"""A customer's order through the gateway over REST, as a client would place and follow it:
shared by the suites that walk the order flow through Envoy."""

from __future__ import annotations

import time
from typing import Any

from tests.support.gateway import admin_token, call
from tools.runner.gateway import Gateway

# How long the saga may take before a test gives up: a bound on waiting, not on speed.
SETTLE_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.2


def stock_and_credit(gateway: Gateway, customer: str) -> str:
    """A product with stock and an open account for `customer`, both set up by an admin;
    returns the product id."""
    token = admin_token()
    product = {
        "sku": f"MUG-{customer}",
        "name": "Mug",
        "unitPriceMinor": 1250,
        "currencyCode": "EUR",
        "initialStock": 10,
    }
    created = call(gateway, "POST", "/v1/products", token=token, body=product)
    assert created.status == 200, created.body
    account = {"customerId": customer, "creditLimitMinor": 100000, "currencyCode": "EUR"}
    opened = call(gateway, "POST", "/v1/payments/accounts", token=token, body=account)
    assert opened.status == 200, opened.body
    return str(created.json()["product"]["productId"])


def place_order(gateway: Gateway, token: str, product_id: str, **headers: str) -> dict[str, Any]:
    order = {"lines": [{"productId": product_id, "quantity": 2}]}
    reply = call(gateway, "POST", "/v1/orders", token=token, body=order, headers=headers)
    assert reply.status == 200, reply.body
    return dict(reply.json()["order"])


def wait_for_status(gateway: Gateway, token: str, order_id: str, status: str) -> dict[str, Any]:
    """Polls GET /v1/orders/{id}, as a client would, until the order reaches `status`."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        order = dict(call(gateway, "GET", f"/v1/orders/{order_id}", token=token).json()["order"])
        if order["status"] == status or time.monotonic() > deadline:
            assert order["status"] == status, order
            return order
        time.sleep(POLL_INTERVAL_S)
