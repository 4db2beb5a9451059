"""The browser pages the gateway serves, in a real headless Chromium (tests/support/browser.py):
the console at /console shows an order's timeline up to CONFIRMED, its saga up to its final
step and its trace as a waterfall with spans from every service it touched, and Swagger UI at /docs
renders the operations of the generated OpenAPI document and, authorised with a development
token, calls the gateway with "Try it out". The whole shop runs behind Envoy.

Screenshots go to the test's undeclared outputs (bazel-testlogs/.../test.outputs/) so a person
can see what the browser saw.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import Browser, headless_chromium
from tests.support.gateway import admin_token, call, token_for
from tests.support.processes import ServiceRunner
from tools.runner.gateway import Gateway

SETTLE_TIMEOUT_S = 60.0
"""A bound on waiting for the saga and for the page's scripts, not on speed."""
POLL_INTERVAL_S = 0.2


def screenshots_dir(tmp_path: Path) -> Path:
    return Path(os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR", tmp_path))


@pytest.fixture
def browser(tmp_path: Path) -> Any:
    with headless_chromium(tmp_path / "browser") as b:
        yield b


def confirmed_order(gateway: Gateway, customer: str) -> str:
    """An order for `customer` placed through the REST API and waited on until CONFIRMED."""
    admin = admin_token()
    product = {
        "sku": f"LAMP-{customer}",
        "name": "Lamp",
        "unitPriceMinor": 4200,
        "currencyCode": "EUR",
        "initialStock": 5,
    }
    created = call(gateway, "POST", "/v1/products", token=admin, body=product)
    assert created.status == 200, created.body
    account = {"customerId": customer, "creditLimitMinor": 100000, "currencyCode": "EUR"}
    assert call(gateway, "POST", "/v1/payments/accounts", token=admin, body=account).status == 200
    line = {"productId": created.json()["product"]["productId"], "quantity": 1}
    token = token_for(customer)
    placed = call(gateway, "POST", "/v1/orders", token=token, body={"lines": [line]})
    assert placed.status == 200, placed.body
    order_id = str(placed.json()["order"]["orderId"])
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        order = call(gateway, "GET", f"/v1/orders/{order_id}", token=token).json()["order"]
        if order["status"] == "ORDER_STATUS_CONFIRMED":
            return order_id
        time.sleep(POLL_INTERVAL_S)
    raise AssertionError(f"order {order_id} not confirmed within {SETTLE_TIMEOUT_S}s")


TRACED_SERVICES = {"orders", "inventory", "payments"}
"""What the waterfall must show at least. Envoy's spans go over OTLP only, never to the span
files, so the gateway is not among them (docs/observability.md)."""


def wait_for_trace(gateway: Gateway, order_id: str) -> None:
    """Until the order's trace, as the console will ask for it, holds spans from every service:
    each process writes its spans on its own schedule."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        reply = call(gateway, "GET", f"/v1/orders/{order_id}/trace", token=admin_token())
        services = set(reply.json()["traces"][0]["services"]) if reply.status == 200 else set()
        if services >= TRACED_SERVICES:
            return
        assert time.monotonic() < deadline, (reply.status, reply.body[:300])
        time.sleep(POLL_INTERVAL_S)


def test_console_shows_an_orders_timeline_saga_and_trace_and_docs_render_operations(
    services: ServiceRunner, gateway: Gateway, browser: Browser, tmp_path: Path
) -> None:
    services.start_shop()
    order_id = confirmed_order(gateway, "carol")
    wait_for_trace(gateway, order_id)
    shots = screenshots_dir(tmp_path)

    browser.get(f"{gateway.url}/console")
    # Her orders and timeline are carol's; the saga and trace views need the admin role.
    browser.wait_for("#token", SETTLE_TIMEOUT_S).type(token_for("carol", roles=["admin"]))
    browser.wait_for("#load-orders", SETTLE_TIMEOUT_S).click()
    row = browser.wait_for(f'#orders tr[data-order-id="{order_id}"]', SETTLE_TIMEOUT_S)
    assert "CONFIRMED" in row.text
    browser.wait_for(f'#orders tr[data-order-id="{order_id}"] a', SETTLE_TIMEOUT_S).click()
    confirmed = browser.wait_for("#timeline li", SETTLE_TIMEOUT_S, text="CONFIRMED")
    kinds = [item.text.split(" v")[0] for item in browser.find_all("#timeline li")]
    assert kinds[0] == "PLACED" and "CONFIRMED" in confirmed.text, kinds
    assert browser.wait_for("#order-status", SETTLE_TIMEOUT_S).text == "CONFIRMED"
    # The saga, up to its final step, with the steps it went through.
    browser.wait_for("#saga dd", SETTLE_TIMEOUT_S, text="DONE")
    steps = [row.text.split()[0] for row in browser.find_all("#saga tbody tr")]
    assert steps[0] == "RESERVING" and steps[-1] == "DONE", steps
    # The trace as a waterfall: spans of every service, children indented under parents.
    browser.wait_for("#trace tbody tr", SETTLE_TIMEOUT_S)
    for service in TRACED_SERVICES:
        [first, *_] = browser.find_all(f'#trace tbody tr[data-service="{service}"]')
        assert service in first.text
    assert browser.find_all('#trace tbody tr[data-depth="1"]'), "no span under a parent"
    assert browser.find_all("#trace .bar")
    browser.screenshot(shots / "console-order.png")
    browser.wait_for("#trace", SETTLE_TIMEOUT_S).scroll_into_view()
    browser.screenshot(shots / "console-trace.png")

    browser.get(f"{gateway.url}/docs")
    operation = browser.wait_for(".opblock-summary-path", SETTLE_TIMEOUT_S, text="/v1/orders")
    assert operation.text.startswith("/v1/orders")
    paths = {element.text for element in browser.find_all(".opblock-summary-path")}
    assert {"/v1/orders/{orderId}/events", "/v1/products"} <= paths, paths
    try_list_orders(browser, token_for("carol"))
    live = ".live-responses-table .response"
    reply = browser.wait_for(f"{live} .response-col_description", SETTLE_TIMEOUT_S, text=order_id)
    reply.scroll_into_view()
    assert browser.wait_for(f"{live} .response-col_status", SETTLE_TIMEOUT_S).text == "200"
    browser.screenshot(shots / "docs.png")


def try_list_orders(browser: Browser, token: str) -> None:
    """The documented dev-token flow in Swagger UI: Authorize with the token, then "Try it out"
    and "Execute" on ListOrders, which calls the gateway the page came from."""
    browser.wait_for(".auth-wrapper .authorize", SETTLE_TIMEOUT_S).click()
    browser.wait_for(".auth-container input", SETTLE_TIMEOUT_S).type(token)
    browser.wait_for(".auth-btn-wrapper .authorize", SETTLE_TIMEOUT_S).click()
    browser.wait_for(".auth-btn-wrapper .btn-done", SETTLE_TIMEOUT_S).click()
    operation = "#operations-OrdersService-OrdersService_ListOrders"
    browser.wait_for(f"{operation} .opblock-summary-control", SETTLE_TIMEOUT_S).click()
    browser.wait_for(f"{operation} .try-out__btn", SETTLE_TIMEOUT_S).click()
    browser.wait_for(f"{operation} .execute", SETTLE_TIMEOUT_S).click()


def test_console_shows_the_gateways_error_for_a_bad_token(
    gateway: Gateway, browser: Browser
) -> None:
    browser.get(f"{gateway.url}/console")
    browser.wait_for("#token", SETTLE_TIMEOUT_S).type("not-a-jwt")
    browser.wait_for("#load-orders", SETTLE_TIMEOUT_S).click()
    error = browser.wait_for("#error", SETTLE_TIMEOUT_S, text="401")
    assert "Jwt" in error.text
