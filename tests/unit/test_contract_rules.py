"""The rules the contracts declare, enforced on request messages with no process or socket."""

from __future__ import annotations

import pytest
from shop.inventory.v1 import inventory_service_pb2 as inv
from shop.orders.v1 import orders_service_pb2 as orders

from runtime import contract_rules
from runtime.errors import InvalidArgumentError


def fields(message: object) -> dict[str, str]:
    return {v.field: v.description for v in contract_rules.violations(message)}  # type: ignore[arg-type]


def test_a_valid_request_breaks_no_rule() -> None:
    request = inv.CreateProductRequest(
        sku="MUG-1", name="Mug", unit_price_minor=1200, currency_code="USD", initial_stock=10
    )
    contract_rules.enforce(request)


def test_every_broken_rule_is_named_with_its_field_path() -> None:
    request = orders.PlaceOrderRequest(
        lines=[
            orders.PlaceOrderLine(product_id="", quantity=0),
            orders.PlaceOrderLine(product_id="p" * 65, quantity=1001),
            orders.PlaceOrderLine(product_id="p", quantity=1),
        ],
        idempotency_key="k" * 129,
    )
    assert fields(request) == {
        "lines[0].product_id": "is required",
        "lines[0].quantity": "must be 1 to 1000, got 0",
        "lines[1].product_id": "must be 1 to 64 characters, got 65",
        "lines[1].quantity": "must be 1 to 1000, got 1001",
        "idempotency_key": "must be at most 128 characters, got 129",
    }


def test_list_bounds_are_checked_and_only_the_allowed_items_are_inspected() -> None:
    assert fields(orders.PlaceOrderRequest()) == {"lines": "must hold 1 to 50 items, got 0"}
    request = inv.BatchGetProductsRequest(product_ids=[""] * 150)
    found = contract_rules.violations(request)
    assert found[0].field == "product_ids"
    assert len(found) == 1 + 100  # the count, then one per inspected item


def test_patterns_and_blank_required_strings_are_refused() -> None:
    request = inv.CreateProductRequest(
        sku="no spaces", name="   ", unit_price_minor=-1, currency_code="usd", initial_stock=1
    )
    assert set(fields(request)) == {"sku", "name", "unit_price_minor", "currency_code"}


def test_a_required_number_must_not_be_zero() -> None:
    request = inv.AdjustStockRequest(product_id="prd_1", delta=0, reason="count")
    with pytest.raises(InvalidArgumentError, match="delta: is required"):
        contract_rules.enforce(request)


def test_a_price_that_could_never_be_paid_is_refused() -> None:
    request = inv.CreateProductRequest(
        sku="X", name="X", unit_price_minor=2**63 - 1, currency_code="USD"
    )
    assert "unit_price_minor" in fields(request)
