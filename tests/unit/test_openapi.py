"""openapi.json, as Bazel generates it from the contracts, describes every public REST call.

The first tests read the descriptor set on their own (not through the generator), so an
annotated RPC that the generator drops, or a new public service nobody listed, fails here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from tests.support.repo import built
from tools.openapi.contracts import Contracts
from tools.openapi.document import DocumentBuilder, camel, openapi_path, path_fields
from tools.runner.gateway import public_services

VERBS = ("get", "put", "post", "delete", "patch")
# The shop's bounded contexts are the public API; platform packages (concord.registry, ...)
# and everything else stay behind the gateway.
PUBLIC_PACKAGE_PREFIX = "shop."


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return dict(json.loads(built("gateway/openapi.json").read_text()))


@pytest.fixture(scope="module")
def contracts() -> Contracts:
    return Contracts.load(built("proto/contracts.binpb"))


def annotated_rpcs() -> dict[str, list[tuple[str, str, str]]]:
    """service -> [(grpc path, verb, path template)] for every google.api.http rule."""
    assert annotations_pb2.http is not None  # registers the extension before parsing
    files = descriptor_pb2.FileDescriptorSet.FromString(built("proto/contracts.binpb").read_bytes())
    rpcs: dict[str, list[tuple[str, str, str]]] = {}
    for file in files.file:
        for service in file.service:
            name = f"{file.package}.{service.name}"
            for method in service.method:
                if not method.options.HasExtension(annotations_pb2.http):
                    continue
                rule = method.options.Extensions[annotations_pb2.http]
                for each in (rule, *rule.additional_bindings):
                    verb = next(v for v in VERBS if getattr(each, v))
                    rpcs.setdefault(name, []).append(
                        (f"/{name}/{method.name}", verb, getattr(each, verb))
                    )
    return rpcs


def test_every_annotated_rpc_of_a_public_service_is_in_openapi_json(
    document: dict[str, Any],
) -> None:
    rpcs = annotated_rpcs()
    missing = []
    for service in public_services():
        for grpc_path, verb, template in rpcs[service]:
            operation = document["paths"].get(openapi_path(template), {}).get(verb)
            if operation is None or operation["x-grpc-method"] != grpc_path:
                missing.append(f"{verb.upper()} {template} ({grpc_path})")
    assert missing == []


def test_every_annotated_shop_service_is_public() -> None:
    public = set(public_services())
    unlisted = [
        s for s in annotated_rpcs() if s.startswith(PUBLIC_PACKAGE_PREFIX) and s not in public
    ]
    assert unlisted == [], (
        "mark them public in runtime/catalogue.py, then python -m tools.catalogue"
    )


def test_internal_services_are_not_described(document: dict[str, Any]) -> None:
    assert not [p for p in document["paths"] if p.startswith("/v1/registry")]


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]

    def refs(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    prefix = "#/components/schemas/"
    dangling = [r for r in refs(document) if r[len(prefix) :] not in schemas]
    assert dangling == []


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_path_templates_become_openapi_paths() -> None:
    assert openapi_path("/v1/orders/{order_id}:cancel") == "/v1/orders/{orderId}:cancel"
    assert openapi_path("/v1/{name=shelves/*}") == "/v1/{name}"
    assert path_fields("/v1/a/{a.b_c}/{d=x/*}") == ["a.b_c", "d"]
    assert camel("as_of_time") == "asOfTime"


def test_path_fields_are_left_out_of_the_body(contracts: Contracts) -> None:
    doc = DocumentBuilder(contracts).build(["shop.orders.v1.OrdersService"], "t", "http://x")
    cancel = doc["paths"]["/v1/orders/{orderId}:cancel"]["post"]
    body = cancel["requestBody"]["content"]["application/json"]["schema"]
    assert list(body["properties"]) == ["reason"]
    assert [p["name"] for p in cancel["parameters"]] == ["orderId"]


def test_bodiless_requests_take_the_other_fields_as_query_parameters(
    contracts: Contracts,
) -> None:
    doc = DocumentBuilder(contracts).build(["shop.orders.v1.OrdersService"], "t", "http://x")
    get_order = doc["paths"]["/v1/orders/{orderId}"]["get"]
    query = {p["name"]: p["schema"] for p in get_order["parameters"] if p["in"] == "query"}
    assert query["asOfVersion"]["format"] == "int64"
    assert query["asOfTime"]["format"] == "date-time"


def test_schemas_follow_the_proto3_json_mapping(document: dict[str, Any]) -> None:
    order = document["components"]["schemas"]["shop.orders.v1.Order"]["properties"]
    assert order["totalMinor"]["type"] == "string"  # int64 is a JSON string
    assert order["createTime"]["format"] == "date-time"
    status = document["components"]["schemas"]["shop.orders.v1.OrderStatus"]
    assert "ORDER_STATUS_CONFIRMED" in status["enum"]
