"""Envoy's access log tells operators what the client did and got: the method and path it sent
(not the POST /<service>/<method> the transcoder made of them), the HTTP status it received, and
a gRPC status only where there really was one: the one a gRPC client got, or the one the service
answered a REST call with. Envoy's own REST refusals have none.

Envoy runs in front of a stub orders service (ListOrders: no orders; GetOrder: NOT_FOUND).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import grpc
import pytest
from shop.orders.v1 import orders_service_pb2, orders_service_pb2_grpc

from tests.support.gateway import BufProtocol, buf_curl, call, token_for
from tools.runner.gateway import Gateway

LOG_WAIT_S = 10.0
"""Envoy writes access log lines in batches (GatewaySettings.access_log_flush_interval_ms)."""


def logged(gateway: Gateway, path: str) -> dict[str, Any]:
    """The access log entry of the one request made to `path`, once Envoy has written it."""
    log = gateway.topology.log_dir / "envoy.log"
    deadline = time.monotonic() + LOG_WAIT_S
    while time.monotonic() < deadline:
        entries = [
            json.loads(line)
            for line in log.read_text().splitlines()
            if line.startswith("{") and path in line
        ]
        matching = [e for e in entries if e["path"] == path]
        if matching:
            (entry,) = matching
            return dict(entry)
        time.sleep(0.2)
    raise AssertionError(f"no access log entry for {path}")


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}"


def test_rest_get_is_logged_as_get_with_the_services_status(
    stub_orders_gateway: Gateway,
) -> None:
    path = f"/v1/orders/{unique('ord_')}"
    reply = call(stub_orders_gateway, "GET", path, token=token_for("alice"))
    assert reply.status == 404
    entry = logged(stub_orders_gateway, path)
    assert (entry["method"], entry["status"], entry["grpc_status"]) == ("GET", 404, 5)
    assert entry["route"] == "orders_read"


def test_rest_head_is_logged_as_head(stub_orders_gateway: Gateway) -> None:
    path = f"/v1/orders?pageToken={unique('')}"
    assert call(stub_orders_gateway, "HEAD", path, token=token_for("alice")).status == 200
    entry = logged(stub_orders_gateway, path)
    assert (entry["method"], entry["status"], entry["grpc_status"]) == ("HEAD", 200, 0)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/orders/{marker}:cancel", b'{"reason": ', 400),  # malformed JSON
        ("GET", "/v1/orders?colour={marker}", None, 400),  # unknown query parameter
        ("GET", "/v1/nothing/{marker}", None, 404),  # no such REST path
        ("POST", "/healthz?{marker}", None, 405),
    ],
)
def test_envoys_own_rest_refusals_have_no_grpc_status(
    stub_orders_gateway: Gateway, method: str, path: str, body: bytes | None, status: int
) -> None:
    path = path.format(marker=unique("m"))
    reply = call(stub_orders_gateway, method, path, token=token_for("alice"), body=body)
    assert reply.status == status
    entry = logged(stub_orders_gateway, path)
    assert (entry["method"], entry["status"], entry["grpc_status"]) == (method, status, None)


def test_grpc_call_is_logged_with_the_status_the_client_got(stub_orders_gateway: Gateway) -> None:
    port = stub_orders_gateway.topology.gateway_port
    customer = unique("cus_")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = orders_service_pb2_grpc.OrdersServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetOrder(
                orders_service_pb2.GetOrderRequest(order_id="ord_1"),
                metadata=(("authorization", f"Bearer {token_for(customer)}"),),
                timeout=10,
            )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    path = "/shop.orders.v1.OrdersService/GetOrder"
    log = stub_orders_gateway.topology.log_dir / "envoy.log"
    deadline = time.monotonic() + LOG_WAIT_S
    while customer not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    (entry,) = [json.loads(x) for x in log.read_text().splitlines() if customer in x]
    assert (entry["method"], entry["path"], entry["status"]) == ("POST", path, 200)
    assert entry["grpc_status"] == 5


@pytest.mark.parametrize(
    ("protocol", "logged_as", "client_status"),
    [
        (BufProtocol.GRPC, "grpc", 200),
        (BufProtocol.GRPC_WEB, "grpc-web", 200),
        (BufProtocol.CONNECT, "connect", 404),  # Connect carries NOT_FOUND as HTTP 404
    ],
)
def test_each_protocol_is_logged_by_name_with_the_services_status(
    stub_orders_gateway: Gateway, protocol: BufProtocol, logged_as: str, client_status: int
) -> None:
    customer = unique("cus_")
    reply = buf_curl(
        stub_orders_gateway,
        protocol,
        "shop.orders.v1.OrdersService/GetOrder",
        {"order_id": "ord_1"},
        token_for(customer),
    )
    assert reply.error()["code"] == "not_found"
    log = stub_orders_gateway.topology.log_dir / "envoy.log"
    deadline = time.monotonic() + LOG_WAIT_S
    while customer not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    (entry,) = [json.loads(x) for x in log.read_text().splitlines() if customer in x]
    assert (entry["protocol"], entry["status"], entry["grpc_status"]) == (
        logged_as,
        client_status,
        5,
    )


def test_rest_is_logged_without_a_protocol(stub_orders_gateway: Gateway) -> None:
    path = f"/v1/orders?pageToken={unique('')}"
    assert call(stub_orders_gateway, "GET", path, token=token_for("alice")).status == 200
    assert logged(stub_orders_gateway, path)["protocol"] is None
