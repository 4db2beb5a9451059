"""grpcurl (the real binary) lists, describes and calls each service through reflection alone."""

from __future__ import annotations

import json
import subprocess

from tests.support.processes import ServiceRunner
from tools.runner.binaries import binary


def grpcurl(*args: str) -> str:
    result = subprocess.run(
        [str(binary("grpcurl")), "-plaintext", *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_grpcurl_lists_describes_and_calls(services: ServiceRunner) -> None:
    inventory = services.start("inventory").address
    payments = services.start("payments").address

    assert "shop.inventory.v1.InventoryService" in grpcurl(inventory, "list").split()
    assert "shop.payments.v1.PaymentsService" in grpcurl(payments, "list").split()
    assert "rpc BatchGetProducts" in grpcurl(
        inventory, "describe", "shop.inventory.v1.InventoryService"
    )
    assert "credit_limit_minor" in grpcurl(
        payments, "describe", "shop.payments.v1.OpenAccountRequest"
    )

    created = json.loads(
        grpcurl(
            "-d",
            '{"sku": "GC-1", "name": "Gizmo", "unit_price_minor": 999, "currency_code": "USD", "initial_stock": 3}',
            inventory,
            "shop.inventory.v1.InventoryService/CreateProduct",
        )
    )
    assert (
        created["product"][
            "stockAvailable" if "stockAvailable" in created["product"] else "stock_available"
        ]
        == "3"
    )
    opened = json.loads(
        grpcurl(
            "-d",
            '{"customer_id": "carol", "credit_limit_minor": 500, "currency_code": "USD"}',
            payments,
            "shop.payments.v1.PaymentsService/OpenAccount",
        )
    )
    assert opened["account"]["customer_id"] == "carol"
    health = json.loads(grpcurl(inventory, "grpc.health.v1.Health/Check"))
    assert health["status"] == "SERVING"
