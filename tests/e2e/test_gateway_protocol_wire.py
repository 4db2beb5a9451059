"""What gRPC-Web and Connect clients read off the wire from the gateway: the exact shapes
of its refusals in each protocol (Connect JSON with the code's HTTP status, Connect's
end-stream frame, gRPC-Web's HTTP 200 with grpc-status), the codec Connect must use, the edge
checks, the body limit, Connect's GET, and what a browser on another origin goes through.

Envoy runs alone, or in front of a stub orders service where a real reply matters; the
buf curl tests through real services are in test_gateway_protocols.py.
"""

from __future__ import annotations

import base64
import json
import struct

import grpc
import pytest
from shop.orders.v1 import orders_service_pb2, orders_service_pb2_grpc

from tests.support.gateway import Reply, call, token_for
from tools.runner.gateway import Gateway, GatewaySettings

LIST_ORDERS = "shop.orders.v1.OrdersService/ListOrders"
EMPTY_GRPC_MESSAGE = b"\0\0\0\0\0"
"""A gRPC (and gRPC-Web) frame: not compressed, length 0, an empty message."""


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


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/grpc-web+proto", EMPTY_GRPC_MESSAGE),
        ("application/grpc-web-text", base64.b64encode(EMPTY_GRPC_MESSAGE)),
    ],
)
def test_grpc_web_error_is_http_200_with_grpc_status(
    lone_gateway: Gateway, content_type: str, body: bytes
) -> None:
    """gRPC-Web carries the status in (trailers-only) headers; a non-200 HTTP status would be
    a transport failure to its clients. The text (base64) variant is answered alike."""
    reply = call(
        lone_gateway,
        "POST",
        f"/{LIST_ORDERS}",
        body=body,
        headers={"content-type": content_type, "x-grpc-web": "1"},
    )

    assert reply.status == 200
    assert reply.content_type.startswith("application/grpc-web")
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


def test_connect_unary_with_content_type_parameters_is_served(lone_gateway: Gateway) -> None:
    """Parameters after the codec do not make it another codec: the call passes the edge and
    finds nothing behind this Envoy."""
    reply = connect_call(lone_gateway, "application/proto; charset=utf-8", b"")

    assert reply.status == 503
    assert reply.json()["code"] == "unavailable"


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


def test_browser_calls_connect_across_origins(lone_gateway: Gateway) -> None:
    """What connect-web in a browser does: a preflight naming Connect's headers, then the call,
    whose error the browser may read (CORS headers on Envoy's own refusal too)."""
    origin = GatewaySettings().cors_allowed_origins[0]
    preflight = call(
        lone_gateway,
        "OPTIONS",
        f"/{LIST_ORDERS}",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type, connect-protocol-version, "
            "connect-timeout-ms, authorization",
        },
    )
    refused = call(
        lone_gateway,
        "POST",
        f"/{LIST_ORDERS}",
        body=b"",
        headers={
            "origin": origin,
            "content-type": "application/proto",
            "connect-protocol-version": "1",
        },
    )

    assert preflight.status == 200
    allowed = preflight.headers["access-control-allow-headers"]
    assert {"connect-protocol-version", "connect-timeout-ms"} <= set(allowed.split(", "))
    assert refused.status == 401
    assert refused.headers["access-control-allow-origin"] == origin
    assert refused.json()["code"] == "unauthenticated"
