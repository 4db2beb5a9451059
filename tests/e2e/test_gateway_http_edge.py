"""REST at the edge: every refusal is a JSON google.rpc.Status, whatever the client sent, and
the HTTP details browsers and operators rely on (methods, HEAD, CORS, the Authorization header)
behave as HTTP says.

Envoy runs with nothing behind it, or with a stub orders service where a real reply matters.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from tests.support.gateway import Reply, call, token_for
from tests.support.repo import REPO_ROOT
from tools.runner.gateway import Gateway, GatewaySettings
from tools.runner.tokens import DEV_KEY_ID, MAX_TTL_S, dev_signing_key, mint_dev_token

GRPC_INVALID_ARGUMENT = 3
GRPC_UNIMPLEMENTED = 12
GRPC_UNAUTHENTICATED = 16
GRPC_UNAVAILABLE = 14
ALLOWED_ORIGIN = GatewaySettings().cors_allowed_origins[0]


def assert_status_body(reply: Reply, http_status: int, grpc_code: int) -> dict[str, Any]:
    """The reply is `http_status` with a google.rpc.Status JSON body carrying `grpc_code`."""
    assert reply.status == http_status, reply.body
    assert reply.content_type == "application/json", reply.body
    body = reply.json()
    assert body["code"] == grpc_code
    assert isinstance(body["message"], str)
    assert isinstance(body["details"], list)
    return dict(body)


@pytest.mark.parametrize(
    "content_type", ["application/octet-stream", "application/grpcweb", "text/plain"]
)
def test_body_the_transcoder_cannot_read_is_a_json_400(
    lone_gateway: Gateway, content_type: str
) -> None:
    """Any content-type that is not gRPC, gRPC-Web or Connect (those are answered in their
    own protocol: test_gateway_protocols.py) is REST to Envoy, whose body is JSON."""
    reply = call(
        lone_gateway,
        "POST",
        "/v1/orders",
        token=token_for("alice"),
        body=b"\0\0\0\0\0",
        headers={"content-type": content_type},
    )
    assert_status_body(reply, 400, GRPC_INVALID_ARGUMENT)


@pytest.mark.parametrize("method", ["POST", "TRACE", "DELETE", "PUT"])
def test_health_refuses_other_methods_with_405(lone_gateway: Gateway, method: str) -> None:
    reply = call(lone_gateway, method, "/healthz")
    assert_status_body(reply, 405, GRPC_UNIMPLEMENTED)
    assert reply.headers["allow"] == "GET, HEAD"


def test_health_answers_head_without_a_body(lone_gateway: Gateway) -> None:
    reply = call(lone_gateway, "HEAD", "/healthz")
    assert reply.status == 200
    assert reply.body == b""


def test_head_on_a_read_route_answers_like_get_without_a_body(
    stub_orders_gateway: Gateway,
) -> None:
    token = token_for("alice")
    get = call(stub_orders_gateway, "GET", "/v1/orders", token=token)
    head = call(stub_orders_gateway, "HEAD", "/v1/orders", token=token)
    assert get.status == head.status == 200
    assert get.json() == {"orders": [], "nextPageToken": ""}
    assert head.body == b""
    assert head.content_type == "application/json"
    missing = call(stub_orders_gateway, "HEAD", "/v1/orders/ord_missing", token=token)
    assert missing.status == 404


def preflight(gateway: Gateway, origin: str, path: str = "/v1/orders") -> Reply:
    return call(
        gateway,
        "OPTIONS",
        path,
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        },
    )


def test_cors_preflight_from_an_allowed_origin_needs_no_token(lone_gateway: Gateway) -> None:
    reply = preflight(lone_gateway, ALLOWED_ORIGIN)
    assert reply.status == 200
    assert reply.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in reply.headers["access-control-allow-methods"]
    allowed = reply.headers["access-control-allow-headers"]
    assert "authorization" in allowed
    assert "content-type" in allowed
    assert "grpc-status" in reply.headers["access-control-expose-headers"]


def test_cors_preflight_from_another_origin_is_not_answered(lone_gateway: Gateway) -> None:
    reply = preflight(lone_gateway, "https://evil.example")
    assert "access-control-allow-origin" not in reply.headers
    assert_status_body(reply, 401, GRPC_UNAUTHENTICATED)


def test_cross_origin_call_still_needs_a_token(lone_gateway: Gateway) -> None:
    reply = call(lone_gateway, "GET", "/v1/orders", headers={"origin": ALLOWED_ORIGIN})
    assert_status_body(reply, 401, GRPC_UNAUTHENTICATED)
    assert reply.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_is_case_insensitive(lone_gateway: Gateway, scheme: str) -> None:
    headers = {"authorization": f"{scheme} {token_for('alice')}"}
    reply = call(lone_gateway, "GET", "/v1/orders", headers=headers)
    assert_status_body(reply, 503, GRPC_UNAVAILABLE)  # authenticated; nothing behind Envoy


def test_token_in_the_query_string_is_not_accepted(lone_gateway: Gateway) -> None:
    reply = call(lone_gateway, "GET", f"/v1/orders?access_token={token_for('alice')}")
    body = assert_status_body(reply, 401, GRPC_UNAUTHENTICATED)
    assert body["message"] == "Jwt is missing"


def signed(claims: dict[str, Any]) -> str:
    key = dev_signing_key(REPO_ROOT)
    base = {"iss": "concord-dev", "aud": "concord", "sub": "alice"}
    return jwt.encode({**base, **claims}, key, algorithm="RS256", headers={"kid": DEV_KEY_ID})


def test_token_without_expiry_is_401(lone_gateway: Gateway) -> None:
    token = signed({"iat": int(time.time())})
    assert_status_body(call(lone_gateway, "GET", "/v1/orders", token=token), 401, 16)


def test_token_living_longer_than_the_maximum_is_401(lone_gateway: Gateway) -> None:
    now = int(time.time())
    lifetime_s = GatewaySettings().jwt_max_lifetime_s + 3600
    token = signed({"iat": now, "exp": now + lifetime_s})
    assert_status_body(call(lone_gateway, "GET", "/v1/orders", token=token), 401, 16)


def test_token_within_the_maximum_lifetime_is_accepted(lone_gateway: Gateway) -> None:
    now = int(time.time())
    token = signed({"iat": now, "exp": now + GatewaySettings().jwt_max_lifetime_s - 60})
    assert_status_body(call(lone_gateway, "GET", "/v1/orders", token=token), 503, 14)


def test_dev_tokens_of_the_longest_lifetime_are_accepted(lone_gateway: Gateway) -> None:
    """`python -m tools.devstack token` must never mint a token the gateway refuses."""
    token = mint_dev_token(REPO_ROOT, "alice", ttl_s=MAX_TTL_S)
    assert_status_body(call(lone_gateway, "GET", "/v1/orders", token=token), 503, 14)
    with pytest.raises(ValueError, match="maximum"):
        mint_dev_token(REPO_ROOT, "alice", ttl_s=MAX_TTL_S + 1)
