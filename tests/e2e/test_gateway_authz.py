"""Roles and ownership through the gateway: the token says who the caller is and what roles it
holds, the services decide (docs/gateway.md, "Authorisation"). Real Envoy, inventory, payments
and NATS on free ports; REST and native gRPC follow the same rules.
"""

from __future__ import annotations

import json

from tests.support.gateway import Reply, admin_token, call, grpcurl_run, token_for
from tests.support.processes import ServiceRunner
from tools.runner.gateway import Gateway

GRPC_NOT_FOUND = 5
GRPC_PERMISSION_DENIED = 7
PRODUCT = {"sku": "MUG-1", "name": "Mug", "unitPriceMinor": 1250, "currencyCode": "EUR"}


def account(customer_id: str) -> dict[str, object]:
    return {"customerId": customer_id, "creditLimitMinor": 100000, "currencyCode": "EUR"}


def assert_role_required(reply: Reply) -> None:
    """403 with a google.rpc.Status JSON body naming the missing role."""
    assert (reply.status, reply.content_type) == (403, "application/json"), reply.body
    body = reply.json()
    assert body["code"] == GRPC_PERMISSION_DENIED
    [info] = [d for d in body["details"] if d["@type"].endswith("google.rpc.ErrorInfo")]
    assert (info["reason"], info["metadata"]) == ("ROLE_REQUIRED", {"role": "admin"})


def test_a_customer_cannot_create_or_restock_products_but_an_admin_can(
    services: ServiceRunner, gateway: Gateway
) -> None:
    services.start("inventory")
    alice = token_for("alice")

    by_customer = call(gateway, "POST", "/v1/products", token=alice, body=PRODUCT)
    claiming_admin = call(
        gateway,
        "POST",
        "/v1/products",
        token=alice,
        body=PRODUCT,
        headers={"x-customer-roles": "admin"},  # stripped: only the token grants roles
    )
    created = call(gateway, "POST", "/v1/products", token=admin_token(), body=PRODUCT)
    product_id = created.json()["product"]["productId"]
    restock = {"delta": 5, "reason": "delivery"}
    path = f"/v1/products/{product_id}:adjustStock"
    restocked_by_customer = call(gateway, "POST", path, token=alice, body=restock)
    restocked = call(gateway, "POST", path, token=admin_token(), body=restock)
    seen = call(gateway, "GET", f"/v1/products/{product_id}", token=alice)

    assert_role_required(by_customer)
    assert_role_required(claiming_admin)
    assert_role_required(restocked_by_customer)
    assert created.status == 200, created.body
    assert restocked.status == 200, restocked.body
    assert seen.json()["product"]["stockOnHand"] == "5"


def test_a_customer_cannot_open_an_account_for_anyone(
    services: ServiceRunner, gateway: Gateway
) -> None:
    services.start("payments")
    alice = token_for("alice")

    for customer in ("alice", "bob"):
        reply = call(gateway, "POST", "/v1/payments/accounts", token=alice, body=account(customer))
        assert_role_required(reply)
    opened = call(
        gateway, "POST", "/v1/payments/accounts", token=admin_token(), body=account("alice")
    )

    assert opened.status == 200, opened.body
    assert opened.json()["account"]["availableMinor"] == "100000"


def test_a_customer_reads_only_their_own_account(services: ServiceRunner, gateway: Gateway) -> None:
    services.start("payments")
    for customer in ("alice", "bob"):
        opened = call(
            gateway, "POST", "/v1/payments/accounts", token=admin_token(), body=account(customer)
        )
        assert opened.status == 200, opened.body
    alice = token_for("alice")

    own = call(gateway, "GET", "/v1/payments/accounts/alice", token=alice)
    others = call(gateway, "GET", "/v1/payments/accounts/bob", token=alice)
    missing = call(gateway, "GET", "/v1/payments/accounts/nobody", token=alice)
    by_admin = call(gateway, "GET", "/v1/payments/accounts/bob", token=admin_token())

    assert own.json()["account"]["customerId"] == "alice"
    assert (others.status, others.json()["code"]) == (404, GRPC_NOT_FOUND)
    assert others.json()["message"] == missing.json()["message"].replace("nobody", "bob")
    assert by_admin.json()["account"]["customerId"] == "bob"


def test_grpcurl_through_the_gateway_follows_the_same_rules(
    services: ServiceRunner, gateway: Gateway
) -> None:
    services.start("inventory")
    services.start("payments")
    address = f"127.0.0.1:{gateway.topology.gateway_port}"
    alice, admin = token_for("alice"), admin_token()

    def run(token: str, method: str, request: dict[str, object]) -> tuple[str, str]:
        """grpcurl's outcome: ("OK", stdout) or (the gRPC code name, stderr)."""
        done = grpcurl_run(gateway, token, "-d", json.dumps(request), address, method)
        if done.returncode == 0:
            return "OK", done.stdout
        return done.stderr.split("Code: ", 1)[-1].split()[0], done.stderr

    open_account = "shop.payments.v1.PaymentsService/OpenAccount"
    get_account = "shop.payments.v1.PaymentsService/GetAccount"
    create_product = "shop.inventory.v1.InventoryService/CreateProduct"
    credit = {"credit_limit_minor": 100, "currency_code": "EUR"}
    product = {"sku": "G-1", "name": "Gizmo", "unit_price_minor": 1, "currency_code": "EUR"}

    assert run(alice, open_account, {"customer_id": "alice", **credit})[0] == "PermissionDenied"
    assert run(alice, create_product, product)[0] == "PermissionDenied"
    assert run(admin, create_product, product)[0] == "OK"
    for customer in ("alice", "bob"):
        assert run(admin, open_account, {"customer_id": customer, **credit})[0] == "OK"
    assert run(alice, get_account, {"customer_id": "bob"})[0] == "NotFound"
    code, own = run(alice, get_account, {"customer_id": "alice"})
    assert code == "OK"
    assert json.loads(own)["account"]["customerId"] == "alice"
