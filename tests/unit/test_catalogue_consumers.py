"""The catalogue's `consumes` is what the services really subscribe to and call, so the
registry's "which consumers does this change break" cannot drift from the code."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from runtime import catalogue
from tests.support.contracts import service_descriptor


class AnyUseCase:
    """Stands in for a service's application: `subscriptions(app)` only reads its handlers."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args: None


def subscribed_types(process: catalogue.Process) -> set[str]:
    module = importlib.import_module(f"{process.package}.consumers")
    return {
        type_name
        for subscription in module.subscriptions(AnyUseCase())
        for type_name in subscription.handlers
    }


def called_methods(process: catalogue.Process) -> set[str]:
    """Every RPC of another process's service whose method name clients.py reaches for."""
    spec = importlib.util.find_spec(f"{process.package}.clients")
    if spec is None or spec.origin is None:
        return set()  # calls nobody
    tree = ast.parse(Path(spec.origin).read_text())
    attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    return {
        method.full_name
        for other in catalogue.CATALOGUE
        if other != process
        for service in other.services
        for method in service_descriptor(service.full_name).methods
        if method.name in attributes
    }


@pytest.mark.parametrize("process", catalogue.shop_services(), ids=lambda p: p.name)
def test_declared_messages_are_the_ones_consumers_py_handles(process: catalogue.Process) -> None:
    assert set(process.consumes.messages) == subscribed_types(process)


@pytest.mark.parametrize("process", catalogue.shop_services(), ids=lambda p: p.name)
def test_declared_calls_are_the_ones_clients_py_makes(process: catalogue.Process) -> None:
    assert set(process.consumes.calls) == called_methods(process)


def test_orders_is_on_record_as_inventorys_caller_and_payments_as_paygates() -> None:
    assert "shop.inventory.v1.InventoryService.BatchGetProducts" in (
        catalogue.process("orders").consumes.calls
    )
    assert "paygate.v1.PaymentGatewayService.Authorize" in (
        catalogue.process("payments").consumes.calls
    )
