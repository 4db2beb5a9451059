"""What the gateway decides on its own, before any service is involved.

Envoy runs with nothing behind it (or, once, a service that never answers), so every reply
here is Envoy's: authentication, request validation by the transcoder, size limits, unknown
routes, an upstream that is down or hung. Each
is a JSON google.rpc.Status for REST callers and a plain gRPC status for gRPC callers.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from shop.orders.v1 import orders_service_pb2, orders_service_pb2_grpc

from tests.support.gateway import Reply, call, running_gateway, token_for
from tests.support.repo import REPO_ROOT
from tools.runner.gateway import Gateway, GatewaySettings
from tools.runner.tokens import DEV_KEY_ID, dev_signing_key, mint_token
from tools.runner.topology import Topology

GRPC_INVALID_ARGUMENT = 3
GRPC_DEADLINE_EXCEEDED = 4
GRPC_NOT_FOUND = 5
GRPC_PERMISSION_DENIED = 7
GRPC_UNAVAILABLE = 14
GRPC_UNAUTHENTICATED = 16


def assert_status_body(reply: Reply, http_status: int, grpc_code: int) -> dict[str, object]:
    """The reply is `http_status` with a google.rpc.Status JSON body carrying `grpc_code`."""
    assert reply.status == http_status, reply.body
    assert reply.content_type == "application/json"
    body = reply.json()
    assert body["code"] == grpc_code
    assert isinstance(body["message"], str)
    assert isinstance(body["details"], list)
    return dict(body)


def test_health_answers_without_a_token(lone_gateway: Gateway) -> None:
    reply = call(lone_gateway, "GET", "/healthz")
    assert reply.status == 200
    assert reply.json() == {"status": "SERVING"}


def test_request_without_token_is_401(lone_gateway: Gateway) -> None:
    reply = call(lone_gateway, "GET", "/v1/orders")
    body = assert_status_body(reply, 401, GRPC_UNAUTHENTICATED)
    assert body["message"] == "Jwt is missing"
    assert reply.headers["www-authenticate"].startswith("Bearer")


def test_token_signed_by_another_key_is_401(lone_gateway: Gateway) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = stranger.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    reply = call(lone_gateway, "GET", "/v1/orders", token=mint_token(pem, "alice"))
    assert_status_body(reply, 401, GRPC_UNAUTHENTICATED)


def test_expired_token_is_401(lone_gateway: Gateway) -> None:
    expired = token_for("alice", ttl_s=60, now_s=1_700_000_000)
    reply = call(lone_gateway, "GET", "/v1/orders", token=expired)
    body = assert_status_body(reply, 401, GRPC_UNAUTHENTICATED)
    assert body["message"] == "Jwt is expired"


@pytest.mark.parametrize("subject", [None, "", "  ", "alice smith"])
def test_token_that_names_no_usable_customer_is_401(
    lone_gateway: Gateway, subject: str | None
) -> None:
    """Services treat a call with no identity metadata as internal and trusted, so the gateway
    must never forward an authenticated request without a customer id (docs/gateway.md)."""
    claims: dict[str, Any] = {"iss": "concord-dev", "aud": "concord", "exp": 4_000_000_000}
    if subject is not None:
        claims["sub"] = subject
    key = dev_signing_key(REPO_ROOT)
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": DEV_KEY_ID})
    reply = call(lone_gateway, "GET", "/v1/payments/accounts/alice", token=token)
    assert_status_body(reply, 401, GRPC_UNAUTHENTICATED)


def test_token_for_another_audience_is_403(lone_gateway: Gateway) -> None:
    reply = call(lone_gateway, "GET", "/v1/orders", token=token_for("alice", audience="other"))
    assert_status_body(reply, 403, GRPC_PERMISSION_DENIED)


def test_unknown_path_is_404(lone_gateway: Gateway) -> None:
    reply = call(lone_gateway, "GET", "/v1/nothing-here", token=token_for("alice"))
    assert_status_body(reply, 404, GRPC_NOT_FOUND)


def test_unknown_method_on_a_known_prefix_is_404(lone_gateway: Gateway) -> None:
    reply = call(lone_gateway, "DELETE", "/v1/orders/ord_1", token=token_for("alice"))
    assert_status_body(reply, 404, GRPC_NOT_FOUND)


def test_upstream_down_is_503(lone_gateway: Gateway) -> None:
    reply = call(lone_gateway, "GET", "/v1/orders/ord_1", token=token_for("alice"))
    assert_status_body(reply, 503, GRPC_UNAVAILABLE)


def test_malformed_json_is_400_with_a_message(lone_gateway: Gateway) -> None:
    reply = call(lone_gateway, "POST", "/v1/orders", token=token_for("alice"), body=b'{"lines": [')
    body = assert_status_body(reply, 400, GRPC_INVALID_ARGUMENT)
    assert body["message"]


def test_wrong_field_type_is_400_naming_the_field(lone_gateway: Gateway) -> None:
    order = {"lines": [{"productId": "prd_1", "quantity": "many"}]}
    reply = call(lone_gateway, "POST", "/v1/orders", token=token_for("alice"), body=order)
    body = assert_status_body(reply, 400, GRPC_INVALID_ARGUMENT)
    assert "lines[0].quantity" in str(body["message"])


def test_unknown_query_parameter_is_400(lone_gateway: Gateway) -> None:
    reply = call(lone_gateway, "GET", "/v1/orders?pageSize=5&colour=red", token=token_for("alice"))
    body = assert_status_body(reply, 400, GRPC_INVALID_ARGUMENT)
    assert "colour" in str(body["message"])


def test_invalid_utf8_is_400(lone_gateway: Gateway) -> None:
    body = b'{"idempotencyKey": "\xff\xfe"}'
    reply = call(lone_gateway, "POST", "/v1/orders", token=token_for("alice"), body=body)
    assert_status_body(reply, 400, GRPC_INVALID_ARGUMENT)


def test_body_over_one_mebibyte_is_413(lone_gateway: Gateway) -> None:
    order = {"idempotencyKey": "x" * (2 * 1024 * 1024)}
    reply = call(lone_gateway, "POST", "/v1/orders", token=token_for("alice"), body=order)
    assert_status_body(reply, 413, GRPC_INVALID_ARGUMENT)


def test_oversized_headers_are_431(lone_gateway: Gateway) -> None:
    headers = {"x-padding": "x" * (40 * 1024)}
    reply = call(lone_gateway, "GET", "/v1/orders", token=token_for("alice"), headers=headers)
    assert_status_body(reply, 431, GRPC_INVALID_ARGUMENT)


def test_headers_with_underscores_are_rejected(lone_gateway: Gateway) -> None:
    headers = {"x_customer_id": "mallory"}
    reply = call(lone_gateway, "GET", "/v1/orders", token=token_for("alice"), headers=headers)
    assert_status_body(reply, 400, GRPC_INVALID_ARGUMENT)


def _list_orders(gateway: Gateway, metadata: tuple[tuple[str, str], ...]) -> grpc.RpcError:
    with grpc.insecure_channel(f"127.0.0.1:{gateway.topology.gateway_port}") as channel:
        stub = orders_service_pb2_grpc.OrdersServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.ListOrders(orders_service_pb2.ListOrdersRequest(), metadata=metadata, timeout=10)
    return raised.value


def test_grpc_without_token_is_unauthenticated(lone_gateway: Gateway) -> None:
    error = _list_orders(lone_gateway, ())
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == "Jwt is missing"


def test_grpc_with_upstream_down_is_unavailable_in_plain_grpc(lone_gateway: Gateway) -> None:
    error = _list_orders(lone_gateway, (("authorization", f"Bearer {token_for('alice')}"),))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert not error.details().startswith("{")


def test_internal_services_are_not_routed(lone_gateway: Gateway) -> None:
    metadata = (("authorization", f"Bearer {token_for('alice')}"),)
    with grpc.insecure_channel(f"127.0.0.1:{lone_gateway.topology.gateway_port}") as channel:
        rebuild = channel.unary_unary(
            "/shop.orders.v1.OrdersAdminService/RebuildReadModels",
            request_serializer=orders_service_pb2.RebuildReadModelsRequest.SerializeToString,
            response_deserializer=orders_service_pb2.RebuildReadModelsResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as raised:
            rebuild(orders_service_pb2.RebuildReadModelsRequest(), metadata=metadata, timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def loaded_bootstrap(gateway: Gateway) -> dict[str, Any]:
    """The bootstrap as the running Envoy parsed it, from its admin API."""
    with urllib.request.urlopen(f"{gateway.admin_url}/config_dump", timeout=10) as r:
        dump = json.load(r)
    return dict(next(c for c in dump["configs"] if "bootstrap" in c)["bootstrap"])


def test_admin_and_ingress_bind_loopback_only(lone_gateway: Gateway) -> None:
    bootstrap = loaded_bootstrap(lone_gateway)
    assert bootstrap["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    listeners = bootstrap["static_resources"]["listeners"]
    assert [x["address"]["socket_address"]["address"] for x in listeners] == ["127.0.0.1"]


def test_edge_hardening_is_in_force(lone_gateway: Gateway) -> None:
    """What Envoy's edge guidance asks for, as the running Envoy loaded it."""
    bootstrap = loaded_bootstrap(lone_gateway)
    monitors = {m["name"] for m in bootstrap["overload_manager"]["resource_monitors"]}
    assert "envoy.resource_monitors.fixed_heap" in monitors
    (listener,) = bootstrap["static_resources"]["listeners"]
    assert listener["per_connection_buffer_limit_bytes"] == 32768
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    assert manager["use_remote_address"] is True
    assert manager["http2_protocol_options"]["max_concurrent_streams"] == 100
    # Header names with `_` and header size are refused by the edge filter, ahead of the rest
    # (tests/e2e/test_gateway_grpc_refusals.py); the codec only has a higher ceiling.
    filters = [f["name"] for f in manager["http_filters"]]
    assert filters.index("envoy.filters.http.lua") < filters.index("envoy.filters.http.jwt_authn")
    assert manager["max_request_headers_kb"] > GatewaySettings().max_request_headers_kb
    for cluster in bootstrap["static_resources"]["clusters"]:
        assert cluster["per_connection_buffer_limit_bytes"] == 32768


def test_a_hung_service_is_a_504_after_the_route_timeout(
    tmp_path: Path, silent_upstream: socket.socket
) -> None:
    topology = Topology.on_free_ports(tmp_path).with_port(
        "orders", silent_upstream.getsockname()[1]
    )
    with running_gateway(topology, GatewaySettings(read_timeout_s=1)) as gateway:
        reply = call(gateway, "GET", "/v1/orders/ord_1", token=token_for("alice"))
    body = assert_status_body(reply, 504, GRPC_DEADLINE_EXCEEDED)
    assert body["message"] == "upstream request timeout"
