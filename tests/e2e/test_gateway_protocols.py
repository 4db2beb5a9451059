"""Every protocol on the gateway's one port: REST, gRPC, gRPC-Web and Connect.

The client is the real `buf curl` with each of its three protocols (docs/gateway.md,
"Protocols: one port"), through real services or Envoy alone. The same token, route buckets,
timeouts and refusals apply whatever the protocol; what differs is only how each protocol
carries an error: a gRPC status in trailers (gRPC, gRPC-Web) or a JSON `{code, message}`
(Connect). The exact wire shapes are in test_gateway_protocol_wire.py.
"""

from __future__ import annotations

import base64
import socket
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from shop.inventory.v1 import inventory_service_pb2

from tests.e2e.conftest import STRICT_LIMITS
from tests.support.gateway import (
    BufProtocol,
    Reply,
    admin_token,
    buf_curl,
    call,
    running_gateway,
    token_for,
)
from tests.support.processes import ServiceRunner
from tools.runner.gateway import Gateway, GatewaySettings
from tools.runner.topology import Topology

LIST_PRODUCTS = "shop.inventory.v1.InventoryService/ListProducts"
GET_PRODUCT = "shop.inventory.v1.InventoryService/GetProduct"
CREATE_PRODUCT = "shop.inventory.v1.InventoryService/CreateProduct"
LIST_ORDERS = "shop.orders.v1.OrdersService/ListOrders"


def create_product(gateway: Gateway, sku: str) -> str:
    created = call(
        gateway,
        "POST",
        "/v1/products",
        token=admin_token(),
        body={
            "sku": sku,
            "name": f"Product {sku}",
            "unitPriceMinor": 1250,
            "currencyCode": "EUR",
            "initialStock": 3,
        },
    )
    assert created.status == 200, created.body
    return str(created.json()["product"]["productId"])


def test_each_protocol_calls_a_real_service(services: ServiceRunner, gateway: Gateway) -> None:
    services.start("inventory")
    product_id = create_product(gateway, "MUG-1")

    for protocol in BufProtocol:
        listed = buf_curl(gateway, protocol, LIST_PRODUCTS, {"page_size": 5}, token_for("alice"))
        got = buf_curl(gateway, protocol, GET_PRODUCT, {"product_id": product_id}, admin_token())

        assert [p["productId"] for p in listed.message()["products"]] == [product_id], protocol
        assert got.message()["product"]["sku"] == "MUG-1", protocol


def test_unknown_product_is_not_found_in_each_protocol(
    services: ServiceRunner, gateway: Gateway
) -> None:
    services.start("inventory")
    for protocol in BufProtocol:
        reply = buf_curl(gateway, protocol, GET_PRODUCT, {"product_id": "prd_nope"}, admin_token())

        error = reply.error()
        assert error["code"] == "not_found", (protocol, error)
        assert "prd_nope" in error["message"], (protocol, error)


def test_reflection_through_the_gateway_serves_every_protocol(
    services: ServiceRunner, gateway: Gateway
) -> None:
    """buf curl finds the schema by reflection (gRPC, with the token), then calls in each."""
    services.start("inventory")
    for protocol in BufProtocol:
        reply = buf_curl(gateway, protocol, LIST_PRODUCTS, {}, admin_token(), reflection=True)
        assert reply.message() == {}, protocol  # no products yet: an empty response


@pytest.mark.parametrize("protocol", list(BufProtocol))
def test_missing_token_is_unauthenticated(lone_gateway: Gateway, protocol: BufProtocol) -> None:
    error = buf_curl(lone_gateway, protocol, LIST_ORDERS).error()
    assert error == {"code": "unauthenticated", "message": "Jwt is missing"}


@pytest.mark.parametrize("protocol", list(BufProtocol))
def test_unrouted_service_is_unimplemented(lone_gateway: Gateway, protocol: BufProtocol) -> None:
    """Internal services have no route: the same answer as a method that does not exist."""
    method = "shop.orders.v1.OrdersAdminService/RebuildReadModels"
    error = buf_curl(lone_gateway, protocol, method, {}, token_for("alice")).error()
    assert error["code"] == "unimplemented", error


@pytest.mark.parametrize("protocol", list(BufProtocol))
def test_authenticated_call_to_a_service_that_is_down_is_unavailable(
    lone_gateway: Gateway, protocol: BufProtocol
) -> None:
    error = buf_curl(lone_gateway, protocol, LIST_ORDERS, {}, token_for("alice")).error()
    assert error["code"] == "unavailable", error


def test_every_protocol_draws_on_the_same_route_bucket(strict_gateway: Gateway) -> None:
    """The gRPC route's bucket for a customer counts their calls in every protocol; beyond it
    each gets RESOURCE_EXHAUSTED in its own form."""
    token = token_for("alice")
    for _ in range(STRICT_LIMITS.grpc.per_customer.burst):
        admitted = buf_curl(strict_gateway, BufProtocol.CONNECT, LIST_ORDERS, {}, token)
        assert admitted.error()["code"] == "unavailable"  # nothing behind this Envoy

    for protocol in BufProtocol:
        error = buf_curl(strict_gateway, protocol, LIST_ORDERS, {}, token).error()
        assert error == {"code": "resource_exhausted", "message": "local_rate_limited"}, protocol


def connect_unary(gateway: Gateway, method: str, request: bytes, token: str) -> Reply:
    return call(
        gateway,
        "POST",
        f"/{method}",
        token=token,
        body=request,
        headers={"content-type": "application/proto", "connect-protocol-version": "1"},
    )


def detail(error: dict[str, Any], message: Message) -> Message:
    """The error's one detail of `message`'s type, decoded into it (Connect: base64, unpadded)."""
    (value,) = [d["value"] for d in error["details"] if d["type"] == message.DESCRIPTOR.full_name]
    message.ParseFromString(base64.b64decode(value + "=" * (-len(value) % 4)))
    return message


def test_connect_errors_carry_the_services_details(
    services: ServiceRunner, gateway: Gateway
) -> None:
    """A Connect client sees the field violations and the missing resource, as REST and gRPC
    clients do, each detail named by its message name as Connect clients look it up (the
    bridge writes type URLs, which client_replies shortens)."""
    services.start("inventory")
    invalid = inventory_service_pb2.CreateProductRequest(sku="", name="", currency_code="EUR")

    refused = connect_unary(gateway, CREATE_PRODUCT, invalid.SerializeToString(), admin_token())
    missing = connect_unary(
        gateway,
        GET_PRODUCT,
        inventory_service_pb2.GetProductRequest(product_id="prd_nope").SerializeToString(),
        admin_token(),
    )

    assert (refused.status, refused.json()["code"]) == (400, "invalid_argument")
    violations = detail(refused.json(), error_details_pb2.BadRequest()).field_violations
    assert {"sku", "name"} <= {v.field for v in violations}
    assert (missing.status, missing.json()["code"]) == (404, "not_found")
    resource = detail(missing.json(), error_details_pb2.ResourceInfo())
    assert "prd_nope" in resource.resource_name


@pytest.mark.parametrize("protocol", list(BufProtocol))
def test_route_timeout_is_deadline_exceeded(
    tmp_path: Path, silent_upstream: socket.socket, protocol: BufProtocol
) -> None:
    topology = Topology.on_free_ports(tmp_path).with_port(
        "orders", silent_upstream.getsockname()[1]
    )
    with running_gateway(topology, GatewaySettings(write_timeout_s=1)) as gateway:
        error = buf_curl(gateway, protocol, LIST_ORDERS, {}, token_for("alice")).error()
    assert error["code"] == "deadline_exceeded", error
