"""REST at the edge: every refusal is a JSON google.rpc.Status, whatever the client sent.

Envoy runs with nothing behind it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.gateway import Reply, call, token_for
from tools.devstack.gateway import Gateway

GRPC_INVALID_ARGUMENT = 3


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
    "content_type", ["application/grpc-web+proto", "application/grpc-web", "text/plain"]
)
def test_body_the_transcoder_cannot_read_is_a_json_400(
    lone_gateway: Gateway, content_type: str
) -> None:
    """A content-type that starts like gRPC's but is not gRPC (grpc-web) is REST to Envoy."""
    reply = call(
        lone_gateway,
        "POST",
        "/v1/orders",
        token=token_for("alice"),
        body=b"\0\0\0\0\0",
        headers={"content-type": content_type},
    )
    assert_status_body(reply, 400, GRPC_INVALID_ARGUMENT)
