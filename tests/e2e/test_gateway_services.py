"""REST and gRPC through the gateway to real services: transcoding, errors, identity, limits.

Each test starts NATS, the services it needs and Envoy on free ports; nothing is mocked.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
from shop.inventory.v1 import inventory_service_pb2, inventory_service_pb2_grpc

from runtime import catalogue
from tests.e2e.conftest import STRICT_LIMITS
from tests.support.gateway import admin_token, call, grpcurl_run, token_for
from tests.support.processes import ServiceRunner
from tools.runner.gateway import Gateway


def product(sku: str, **overrides: Any) -> dict[str, Any]:
    return {
        "sku": sku,
        "name": f"Product {sku}",
        "unitPriceMinor": 1250,
        "currencyCode": "EUR",
        "initialStock": 10,
        **overrides,
    }


def test_product_created_over_rest_reads_back_in_proto3_json(
    services: ServiceRunner, gateway: Gateway
) -> None:
    services.start("inventory")
    token = admin_token()  # creating products is the shop's job

    created = call(gateway, "POST", "/v1/products", token=token, body=product("MUG-1"))
    assert created.status == 200, created.body
    product_id = created.json()["product"]["productId"]
    fetched = call(gateway, "GET", f"/v1/products/{product_id}", token=token)

    assert fetched.status == 200
    assert fetched.content_type == "application/json"
    body = fetched.json()["product"]
    assert body["sku"] == "MUG-1"
    assert body["unitPriceMinor"] == "1250"  # int64 as a string, camelCase names
    assert body["stockReserved"] == "0"  # zero values are printed, not omitted
    listed = call(gateway, "GET", "/v1/products?pageSize=10", token=token).json()
    assert [p["productId"] for p in listed["products"]] == [product_id]


def test_service_errors_become_json_status_with_details(
    services: ServiceRunner, gateway: Gateway
) -> None:
    services.start("inventory")
    token = admin_token()  # creating products is the shop's job
    call(gateway, "POST", "/v1/products", token=token, body=product("MUG-1"))

    invalid = call(gateway, "POST", "/v1/products", token=token, body=product("", name=""))
    duplicate = call(gateway, "POST", "/v1/products", token=token, body=product("MUG-1"))
    missing = call(gateway, "GET", "/v1/products/prd_nope", token=token)

    assert invalid.status == 400
    violations = [
        v["field"]
        for d in invalid.json()["details"]
        if d["@type"].endswith("google.rpc.BadRequest")
        for v in d["fieldViolations"]
    ]
    assert {"sku", "name"} <= set(violations)
    assert (duplicate.status, duplicate.json()["code"]) == (409, 6)
    assert (missing.status, missing.json()["code"]) == (404, 5)
    assert missing.json()["details"][0]["@type"].endswith("google.rpc.ResourceInfo")


def test_unknown_body_fields_are_ignored(services: ServiceRunner, gateway: Gateway) -> None:
    """Concord's documented choice (docs/gateway.md): a tolerant reader, as proto3 JSON
    parsers with ignore_unknown_fields; misspelt required fields still fail validation."""
    services.start("inventory")
    token = admin_token()  # creating products is the shop's job

    created = call(
        gateway, "POST", "/v1/products", token=token, body=product("MUG-1", colour="red")
    )
    misspelt = call(
        gateway, "POST", "/v1/products", token=token, body={**product(""), "skuu": "MUG-2"}
    )

    assert created.status == 200
    assert "colour" not in created.json()["product"]
    assert misspelt.status == 400


def test_rate_limited_writes_never_reach_the_service(
    services: ServiceRunner, strict_gateway: Gateway
) -> None:
    services.start("inventory")
    token = admin_token()  # creating products is the shop's job
    burst = STRICT_LIMITS.writes.per_customer.burst

    replies = [
        call(strict_gateway, "POST", "/v1/products", token=token, body=product(f"SKU-{i}"))
        for i in range(burst + 2)
    ]

    assert [r.status for r in replies] == [200] * burst + [429, 429]
    assert replies[-1].json()["code"] == 8
    assert replies[-1].headers["retry-after"] == str(STRICT_LIMITS.writes.retry_after_s)
    listed = call(strict_gateway, "GET", "/v1/products", token=token).json()
    assert sorted(p["sku"] for p in listed["products"]) == [f"SKU-{i}" for i in range(burst)]


def test_native_grpc_passes_through_the_same_port(
    services: ServiceRunner, gateway: Gateway
) -> None:
    services.start("inventory")
    metadata = (("authorization", f"Bearer {admin_token()}"),)
    with grpc.insecure_channel(f"127.0.0.1:{gateway.topology.gateway_port}") as channel:
        stub = inventory_service_pb2_grpc.InventoryServiceStub(channel)
        created = stub.CreateProduct(
            inventory_service_pb2.CreateProductRequest(
                sku="MUG-1", name="Mug", unit_price_minor=100, currency_code="EUR"
            ),
            metadata=metadata,
            timeout=10,
        )
        with_rest = call(
            gateway, "GET", f"/v1/products/{created.product.product_id}", token=token_for("alice")
        )
    assert with_rest.json()["product"]["sku"] == "MUG-1"


def grpcurl(gateway: Gateway, *args: str) -> str:
    """grpcurl as an admin, which must succeed."""
    result = grpcurl_run(gateway, admin_token(), *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_grpcurl_through_the_gateway_lists_and_calls(
    services: ServiceRunner, gateway: Gateway
) -> None:
    services.start("inventory")
    services.start("payments")
    address = f"127.0.0.1:{gateway.topology.gateway_port}"

    listed = grpcurl(gateway, address, "list").split()
    created = json.loads(
        grpcurl(
            gateway,
            "-d",
            json.dumps(
                {
                    "sku": "GC-1",
                    "name": "Gizmo",
                    "unit_price_minor": 999,
                    "currency_code": "USD",
                    "initial_stock": 3,
                }
            ),
            address,
            "shop.inventory.v1.InventoryService/CreateProduct",
        )
    )
    opened = json.loads(
        grpcurl(
            gateway,
            "-d",
            json.dumps({"customer_id": "alice", "credit_limit_minor": 500, "currency_code": "USD"}),
            address,
            "shop.payments.v1.PaymentsService/OpenAccount",
        )
    )

    assert {"shop.inventory.v1.InventoryService", "shop.payments.v1.PaymentsService"} <= set(listed)
    assert created["product"]["sku"] == "GC-1"
    assert opened["account"]["customerId"] == "alice"


def test_reflection_through_the_gateway_lists_and_describes_public_services_only(
    services: ServiceRunner, gateway: Gateway
) -> None:
    services.start("inventory")
    token = admin_token()
    address = f"127.0.0.1:{gateway.topology.gateway_port}"

    listed = grpcurl_run(gateway, token, address, "list", reflection=True)
    described = grpcurl_run(
        gateway, token, address, "describe", "shop.inventory.v1.InventoryService", reflection=True
    )
    called = grpcurl_run(
        gateway,
        token,
        "-d",
        '{"page_size": 5}',
        address,
        "shop.inventory.v1.InventoryService/ListProducts",
        reflection=True,
    )
    hidden = {
        name: grpcurl_run(gateway, token, address, "describe", name, reflection=True)
        for name in (
            "shop.orders.v1.OrdersAdminService",
            "concord.ops.v1.OperationsService",
            "grpc.health.v1.Health",
            "concord.registry.v1.DiscoveryService",
        )
    }

    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.split()) == sorted(catalogue.grpc_routed_services())
    assert described.returncode == 0 and "rpc CreateProduct" in described.stdout
    assert called.returncode == 0, called.stderr
    assert {name: r.returncode != 0 for name, r in hidden.items()} == dict.fromkeys(hidden, True)
