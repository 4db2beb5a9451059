"""Typed calls to other services: prices for new orders, asked of inventory synchronously
(deadline + circuit breaker, runtime.clients)."""

from __future__ import annotations

from typing import Protocol

from shop.inventory.v1 import inventory_service_pb2 as inv
from shop.inventory.v1.inventory_service_pb2_grpc import InventoryServiceStub

from runtime.clients import ServiceClient

INVENTORY_SERVICE = inv.DESCRIPTOR.services_by_name["InventoryService"].full_name
"""Pricing asks whichever inventory instance the registry lists as live."""

Prices = dict[str, tuple[int, str]]
"""{product_id: (unit_price_minor, currency_code)}"""


class UnknownProductsError(Exception):
    def __init__(self, product_ids: set[str]) -> None:
        self.product_ids = product_ids
        super().__init__(", ".join(sorted(product_ids)))


class Pricing(Protocol):
    """What placing an order needs of inventory (tests stand in for it)."""

    async def prices(self, product_ids: list[str]) -> Prices:
        """UnknownProductsError names the products inventory does not know."""
        ...


class InventoryPricing:
    def __init__(self, inventory: ServiceClient[InventoryServiceStub]) -> None:
        self._inventory = inventory

    async def prices(self, product_ids: list[str]) -> Prices:
        reply: inv.BatchGetProductsResponse = await self._inventory.call(
            lambda inventory: inventory.BatchGetProducts,
            inv.BatchGetProductsRequest(product_ids=product_ids, allow_missing=True),
            idempotent=True,  # a read: safe to retry
        )
        if reply.missing_product_ids:
            raise UnknownProductsError(set(reply.missing_product_ids))
        return {p.product_id: (p.unit_price_minor, p.currency_code) for p in reply.products}
