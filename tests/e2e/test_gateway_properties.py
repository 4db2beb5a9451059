"""Generated hostile input, through Envoy and straight to every service: whatever is sent, the
answer is a clear refusal or a success, never a 5xx, UNKNOWN, INTERNAL or a hang; every REST
error body is JSON, a google.rpc.Status, with a status the document lists for the operation.

Requests come from openapi.json and from the contracts' descriptors (tests/support/
generated_requests.py), half of them following the schemas and half not. The example counts
bound the run to a minute or two; every run draws new examples, and a failure prints the one
that broke (hypothesis shrinks it first).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime import catalogue
from tests.e2e.conftest import wait_for_endpoint
from tests.support.contracts import service_descriptor
from tests.support.gateway import admin_token, call, running_gateway, token_for
from tests.support.generated_requests import json_schema, request_bytes, rest_calls
from tests.support.processes import REGISTRY, ServiceRunner
from tests.support.repo import built
from tools.runner.gateway import (
    Gateway,
    GatewaySettings,
    RouteLimit,
    RouteLimits,
)
from tools.runner.topology import Topology

REST_EXAMPLES = 1000
GRPC_EXAMPLES = 1000
CALL_TIMEOUT_S = 10.0
"""A bound on one call: an answer that takes longer counts as a hang."""

# Far above what the test sends, so its requests reach the services instead of the limiter.
UNLIMITED_ROUTE = RouteLimits(
    per_customer=RouteLimit(burst=1_000_000), global_guard=RouteLimit(burst=1_000_000)
)
UNLIMITED = GatewaySettings(reads=UNLIMITED_ROUTE, writes=UNLIMITED_ROUTE, grpc=UNLIMITED_ROUTE)
FORBIDDEN_CODES = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}
PAYGATE_SERVICE = "paygate.v1.PaymentGatewayService"


def examples(count: int) -> settings:
    """`count` examples, no per-example deadline (the calls cross processes), no example
    database in the source tree; the stack is started once for all of them, on purpose."""
    return settings(
        max_examples=count,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@pytest.fixture
def shop(services: ServiceRunner, topology: Topology) -> Iterator[Gateway]:
    """Every service, and Envoy with limits the test never reaches, fed by the registry."""
    services.start(REGISTRY)
    with running_gateway(topology, UNLIMITED, from_registry=True) as gateway:
        services.on_live.append(lambda name, service: wait_for_endpoint(gateway, name, service))
        services.start_shop()
        yield gateway


def tokens() -> st.SearchStrategy[str | None]:
    return st.sampled_from([admin_token(), token_for("alice"), None, "not.a.token"])


def test_generated_rest_calls_get_documented_answers(shop: Gateway) -> None:
    document: dict[str, Any] = json.loads(built("gateway/openapi.json").read_text())
    status_schema = json_schema(document, {"$ref": "#/components/schemas/google.rpc.Status"})

    @examples(REST_EXAMPLES)
    @given(rest_calls(document), tokens())
    def check(request: tuple[str, str, dict[str, Any], object], token: str | None) -> None:
        verb, path, operation, body = request
        reply = call(shop, verb, path, token=token, body=body)
        where = f"{verb} {path} -> {reply.status} {reply.body[:300]!r}"
        assert reply.status < 500, where
        if reply.status == 200:
            return
        assert str(reply.status) in operation["responses"], f"undocumented status: {where}"
        assert reply.content_type.startswith("application/json"), where
        jsonschema.validate(reply.json(), status_schema)

    check()


def grpc_methods() -> list[tuple[str, Any]]:
    found = []
    for service_name in [*catalogue.grpc_routed_services(), PAYGATE_SERVICE]:
        service = service_descriptor(service_name)
        found += [(f"/{service_name}/{m.name}", m.input_type) for m in service.methods]
    return found


@st.composite
def grpc_calls(draw: st.DrawFn) -> tuple[str, bytes]:
    method, request_type = draw(st.sampled_from(grpc_methods()))
    return method, draw(request_bytes(request_type))


def test_generated_grpc_calls_never_fail_inside(shop: Gateway, topology: Topology) -> None:
    direct = {  # proto package -> the port of the process serving it
        service.full_name.rsplit(".", 1)[0]: topology.port(process.name)
        for process in catalogue.CATALOGUE
        for service in process.services
    }
    channels: dict[int, grpc.Channel] = {}

    def channel(port: int) -> grpc.Channel:
        if port not in channels:
            channels[port] = grpc.insecure_channel(f"127.0.0.1:{port}")
        return channels[port]

    @examples(GRPC_EXAMPLES)
    @given(grpc_calls(), tokens(), st.booleans())
    def check(request: tuple[str, bytes], token: str | None, through_gateway: bool) -> None:
        method, payload = request
        package = method.strip("/").rsplit(".", 1)[0]
        if through_gateway and package != "paygate.v1":
            port = topology.gateway_port
            metadata = [("authorization", f"Bearer {token}")] if token else []
        else:
            port = direct[package]
            metadata = [("x-customer-id", "alice")] if token else []
        stub = channel(port).unary_unary(method)
        try:
            stub(payload, metadata=metadata, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as error:
            code = error.code()  # type: ignore[attr-defined]
            where = f"{method} via :{port} -> {code.name}: {error.details()}"  # type: ignore[attr-defined]
            assert code not in FORBIDDEN_CODES, where

    try:
        check()
    finally:
        for open_channel in channels.values():
            open_channel.close()
