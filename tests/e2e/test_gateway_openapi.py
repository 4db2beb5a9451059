"""openapi.json is accurate enough to drive a client: calls built only from the document
(operationId -> verb, path, parameters) succeed through the gateway, and every field of every
response is one the document declares."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tests.support.gateway import Reply, admin_token, call
from tests.support.processes import ServiceRunner
from tests.support.repo import REPO_ROOT
from tools.runner.gateway import Gateway

Document = dict[str, Any]


@pytest.fixture(scope="module")
def document() -> Document:
    for candidate in (
        REPO_ROOT / "gateway/openapi.json",
        REPO_ROOT / "bazel-bin/gateway/openapi.json",
    ):
        if candidate.exists():
            return dict(json.loads(Path(candidate).read_text()))
    raise FileNotFoundError("openapi.json: add //gateway:openapi to the target's data")


class DocumentClient:
    """What a generated client does: look an operation up by id and fill in its template."""

    def __init__(self, document: Document, gateway: Gateway, token: str) -> None:
        self.document = document
        self.gateway = gateway
        self.token = token

    def operation(self, operation_id: str) -> tuple[str, str, Document]:
        for path, item in self.document["paths"].items():
            for verb, operation in item.items():
                if operation["operationId"] == operation_id:
                    return verb.upper(), path, operation
        raise KeyError(operation_id)

    def __call__(self, operation_id: str, body: object = None, **params: Any) -> Reply:
        verb, path, operation = self.operation(operation_id)
        query: list[tuple[str, str]] = []
        for parameter in operation.get("parameters", []):
            value = params.pop(parameter["name"], None)
            if value is None:
                continue
            if parameter["in"] == "path":
                path = path.replace("{" + parameter["name"] + "}", urllib.parse.quote(value))
            else:
                values = value if isinstance(value, list) else [value]
                query += [(parameter["name"], str(v)) for v in values]
        assert not params, f"{operation_id} has no parameters {sorted(params)}"
        if query:
            path += "?" + urllib.parse.urlencode(query)
        return call(self.gateway, verb, path, token=self.token, body=body)

    def undeclared_fields(self, operation_id: str, value: object) -> list[str]:
        """Fields of a 200 response the document does not declare, as dotted paths."""
        _, _, operation = self.operation(operation_id)
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        return self._undeclared(schema, value, "")

    def _undeclared(self, schema: Document, value: object, at: str) -> list[str]:
        schema = self._resolve(schema)
        if isinstance(value, dict) and "properties" in schema:
            found = []
            for key, item in value.items():
                if key not in schema["properties"]:
                    found.append(f"{at}.{key}")
                else:
                    found += self._undeclared(schema["properties"][key], item, f"{at}.{key}")
            return found
        if isinstance(value, list) and "items" in schema:
            return [u for item in value for u in self._undeclared(schema["items"], item, at)]
        return []

    def _resolve(self, schema: Document) -> Document:
        while "$ref" in schema or "allOf" in schema:
            if "allOf" in schema:
                schema = schema["allOf"][0]
            else:
                name = schema["$ref"].rsplit("/", 1)[-1]
                schema = self.document["components"]["schemas"][name]
        return schema


def test_calls_built_from_the_document_work_and_match_its_schemas(
    document: Document, services: ServiceRunner, gateway: Gateway
) -> None:
    services.start("inventory")
    client = DocumentClient(document, gateway, admin_token())  # creates and restocks products
    product = {
        "sku": "DOC-1",
        "name": "Documented mug",
        "unitPriceMinor": 990,
        "currencyCode": "EUR",
        "initialStock": 4,
    }

    created = client("InventoryService_CreateProduct", body=product)
    product_id = created.json()["product"]["productId"]
    fetched = client("InventoryService_GetProduct", productId=product_id)
    listed = client("InventoryService_ListProducts", pageSize=5)
    batch = client("InventoryService_BatchGetProducts", productIds=[product_id, product_id])
    adjusted = client(
        "InventoryService_AdjustStock",
        body={"delta": 3, "reason": "delivery"},
        productId=product_id,
    )

    replies = {
        "InventoryService_CreateProduct": created,
        "InventoryService_GetProduct": fetched,
        "InventoryService_ListProducts": listed,
        "InventoryService_BatchGetProducts": batch,
        "InventoryService_AdjustStock": adjusted,
    }
    assert {op: r.status for op, r in replies.items()} == {op: 200 for op in replies}
    assert {op: client.undeclared_fields(op, r.json()) for op, r in replies.items()} == {
        op: [] for op in replies
    }
    assert adjusted.json()["product"]["stockOnHand"] == "7"
    assert len(batch.json()["products"]) == 2
