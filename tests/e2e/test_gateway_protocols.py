"""Every protocol on the gateway's one port: REST, gRPC, gRPC-Web and Connect.

The client is the real `buf curl` with each of its three protocols (docs/gateway.md,
"Protocols"); the wire shapes a browser or a TypeScript client reads are checked with plain
HTTP as well. The same token, route buckets and refusals apply whatever the protocol; what
differs is only how each protocol carries an error: a gRPC status in trailers (gRPC,
gRPC-Web) or a JSON `{code, message}` (Connect).
"""

from __future__ import annotations

import base64
import json
import struct

import grpc
import pytest
from shop.orders.v1 import orders_service_pb2, orders_service_pb2_grpc

from tests.e2e.conftest import STRICT_LIMITS
from tests.support.gateway import (
    BufProtocol,
    Reply,
    admin_token,
    buf_curl,
    call,
    token_for,
)
from tests.support.processes import ServiceRunner
from tools.runner.gateway import Gateway

LIST_PRODUCTS = "shop.inventory.v1.InventoryService/ListProducts"
GET_PRODUCT = "shop.inventory.v1.InventoryService/GetProduct"
LIST_ORDERS = "shop.orders.v1.OrdersService/ListOrders"
EMPTY_GRPC_MESSAGE = b"\0\0\0\0\0"
"""A gRPC (and gRPC-Web) frame: not compressed, length 0, an empty message."""


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
    """The gRPC route's bucket counts calls in every protocol; beyond it each gets
    RESOURCE_EXHAUSTED in its own form."""
    token = token_for("alice")
    for _ in range(STRICT_LIMITS.grpc.burst):
        admitted = buf_curl(strict_gateway, BufProtocol.CONNECT, LIST_ORDERS, {}, token)
        assert admitted.error()["code"] == "unavailable"  # nothing behind this Envoy

    for protocol in BufProtocol:
        error = buf_curl(strict_gateway, protocol, LIST_ORDERS, {}, token).error()
        assert error == {"code": "resource_exhausted", "message": "local_rate_limited"}, protocol


def test_connect_error_is_json_with_the_http_status_of_its_code(lone_gateway: Gateway) -> None:
    """What a Connect client (connect-es, connect-go) reads off the wire for Envoy's refusal."""
    reply = call(
        lone_gateway,
        "POST",
        f"/{LIST_ORDERS}",
        body=b"",
        headers={"content-type": "application/proto", "connect-protocol-version": "1"},
    )

    assert reply.status == 401
    assert reply.content_type == "application/json"
    assert reply.json() == {"code": "unauthenticated", "message": "Jwt is missing"}
    assert "grpc-status" not in reply.headers


def test_connect_streaming_error_is_an_end_stream_frame(lone_gateway: Gateway) -> None:
    reply = call(
        lone_gateway,
        "POST",
        f"/{LIST_ORDERS}",
        body=EMPTY_GRPC_MESSAGE,
        headers={"content-type": "application/connect+proto", "connect-protocol-version": "1"},
    )

    assert reply.status == 200
    assert reply.content_type == "application/connect+proto"
    flags, length = struct.unpack(">BI", reply.body[:5])
    assert flags == 2  # end of stream
    end = json.loads(reply.body[5 : 5 + length])
    assert end == {"error": {"code": "unauthenticated", "message": "Jwt is missing"}}


def test_grpc_web_error_is_http_200_with_grpc_status(lone_gateway: Gateway) -> None:
    """gRPC-Web carries the status in (trailers-only) headers; a non-200 HTTP status would be
    a transport failure to its clients."""
    reply = call(
        lone_gateway,
        "POST",
        f"/{LIST_ORDERS}",
        body=EMPTY_GRPC_MESSAGE,
        headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
    )

    assert reply.status == 200
    assert reply.content_type == "application/grpc-web+proto"
    assert reply.headers["grpc-status"] == "16"
    assert reply.headers["grpc-message"] == "Jwt is missing"


def connect_call(gateway: Gateway, content_type: str, body: bytes, **headers: str) -> Reply:
    return call(
        gateway,
        "POST",
        f"/{LIST_ORDERS}",
        token=token_for("alice"),
        body=body,
        headers={"content-type": content_type, "connect-protocol-version": "1", **headers},
    )


def test_connect_unary_with_the_json_codec_is_invalid_argument(lone_gateway: Gateway) -> None:
    """The services decode protobuf only; JSON clients have the REST paths."""
    reply = connect_call(lone_gateway, "application/json", b"{}")

    assert reply.status == 400
    assert reply.json()["code"] == "invalid_argument"
    assert "application/proto" in reply.json()["message"]


def test_connect_streaming_with_the_json_codec_is_invalid_argument(lone_gateway: Gateway) -> None:
    reply = connect_call(lone_gateway, "application/connect+json", b"\0\0\0\0\2{}")

    assert reply.status == 200
    error = json.loads(reply.body[5:])["error"]
    assert error["code"] == "invalid_argument"
    assert "application/proto" in error["message"]


@pytest.mark.parametrize("content_type", ["application/grpc-web+proto", "application/proto"])
def test_edge_checks_answer_in_the_client_protocol(
    lone_gateway: Gateway, content_type: str
) -> None:
    """The edge filter's own refusals (a header name with `_`) reach gRPC-Web and Connect
    clients as INVALID_ARGUMENT in their protocol, never as REST JSON."""
    reply = call(
        lone_gateway,
        "POST",
        f"/{LIST_ORDERS}",
        token=token_for("alice"),
        body=EMPTY_GRPC_MESSAGE,
        headers={"content-type": content_type, "x_customer_id": "mallory"}
        | ({"connect-protocol-version": "1"} if content_type == "application/proto" else {}),
    )

    if content_type == "application/proto":  # Connect unary
        assert reply.status == 400
        assert reply.json()["code"] == "invalid_argument"
        assert "x_customer_id" in reply.json()["message"]
    else:
        assert reply.status == 200
        assert reply.headers["grpc-status"] == "3"
        assert "x_customer_id" in reply.headers["grpc-message"]


def test_grpc_call_carrying_connects_header_stays_grpc(stub_orders_gateway: Gateway) -> None:
    """`connect-protocol-version` on a gRPC call does not make the Connect bridge answer it
    in Connect's form (which a gRPC client cannot read)."""
    port = stub_orders_gateway.topology.gateway_port
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = orders_service_pb2_grpc.OrdersServiceStub(channel)
        reply = stub.ListOrders(
            orders_service_pb2.ListOrdersRequest(),
            metadata=(
                ("authorization", f"Bearer {token_for('alice')}"),
                ("connect-protocol-version", "1"),
            ),
            timeout=10,
        )
    assert reply == orders_service_pb2.ListOrdersResponse()


def test_connect_get_reads_through_the_query_string(stub_orders_gateway: Gateway) -> None:
    """Connect's cacheable unary GET: the message base64url-encoded in `message`."""
    request = orders_service_pb2.GetOrderRequest(order_id="ord_1").SerializeToString()
    message = base64.urlsafe_b64encode(request).decode().rstrip("=")
    reply = call(
        stub_orders_gateway,
        "GET",
        f"/shop.orders.v1.OrdersService/GetOrder?connect=v1&encoding=proto&base64=1&message={message}",
        token=token_for("alice"),
    )

    assert reply.status == 404
    assert reply.json() == {"code": "not_found", "message": "order ord_1 not found"}


@pytest.mark.parametrize("content_type", ["application/proto", "application/grpc-web+proto"])
def test_message_over_one_mebibyte_is_resource_exhausted(
    lone_gateway: Gateway, content_type: str
) -> None:
    """The bridges buffer a Connect unary body whole; the buffer filter's limit still holds,
    and the refusal is in the client's protocol."""
    request = orders_service_pb2.ListOrdersRequest(page_token="x" * (2 * 1024 * 1024))
    payload = request.SerializeToString()
    if content_type == "application/proto":
        body, headers = payload, {"connect-protocol-version": "1"}
    else:
        body, headers = struct.pack(">BI", 0, len(payload)) + payload, {}
    reply = call(
        lone_gateway,
        "POST",
        f"/{LIST_ORDERS}",
        token=token_for("alice"),
        body=body,
        headers={"content-type": content_type, **headers},
    )

    message = "request message larger than 1048576 bytes"
    if content_type == "application/proto":  # Connect unary
        assert reply.status == 429
        assert reply.json() == {"code": "resource_exhausted", "message": message}
    else:
        assert reply.status == 200
        assert (reply.headers["grpc-status"], reply.headers["grpc-message"]) == ("8", message)
