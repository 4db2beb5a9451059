"""Prices for new orders, asked of inventory synchronously (deadline + circuit breaker)."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from shop.inventory.v1 import inventory_service_pb2 as inv

from services.common.clients import ServiceClient

BATCH_GET = "/shop.inventory.v1.InventoryService/BatchGetProducts"


class UnknownProductsError(Exception):
    def __init__(self, product_ids: set[str]) -> None:
        self.product_ids = product_ids
        super().__init__(", ".join(sorted(product_ids)))


class Pricing:
    def __init__(self, inventory: ServiceClient) -> None:
        self._inventory = inventory

    async def prices(self, product_ids: list[str]) -> dict[str, tuple[int, str]]:
        """{product_id: (unit_price_minor, currency_code)}; UnknownProductsError names the
        products inventory does not know."""
        try:
            reply = await self._inventory.call(
                BATCH_GET,
                inv.BatchGetProductsRequest(product_ids=product_ids),
                inv.BatchGetProductsResponse,
                idempotent=True,  # a read: safe to retry
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                # Only ids asked about count: a name cut short (grpc_errors caps statuses) can
                # end in a fragment; with none left, every product asked about is suspect.
                missing = _missing(error) & set(product_ids)
                raise UnknownProductsError(missing or set(product_ids)) from error
            raise
        return {p.product_id: (p.unit_price_minor, p.currency_code) for p in reply.products}


def _missing(error: grpc.aio.AioRpcError) -> set[str]:
    """The ids inventory's NOT_FOUND names in its ResourceInfo detail."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
            info = error_details_pb2.ResourceInfo()
            detail.Unpack(info)
            return {pid.strip() for pid in info.resource_name.split(",") if pid.strip()}
    return set()
