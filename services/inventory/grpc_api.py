"""InventoryService over gRPC: proto request -> one application call -> proto response."""

from __future__ import annotations

import grpc
from shop.inventory.v1 import inventory_pb2, inventory_service_pb2, inventory_service_pb2_grpc

from runtime.caller import caller_of
from runtime.ids import timestamp
from services.inventory.application import Inventory
from services.inventory.domain import NewProduct, Product, Reservation

SERVICE_NAME = inventory_service_pb2.DESCRIPTOR.services_by_name["InventoryService"].full_name


def product_pb(p: Product) -> inventory_pb2.Product:
    return inventory_pb2.Product(
        product_id=p.product_id,
        sku=p.sku,
        name=p.name,
        unit_price_minor=p.unit_price_minor,
        currency_code=p.currency_code,
        stock_on_hand=p.stock_on_hand,
        stock_reserved=p.stock_reserved,
        stock_available=p.stock_available,
        create_time=timestamp(p.create_time),
        update_time=timestamp(p.update_time),
    )


def reservation_pb(r: Reservation) -> inventory_pb2.Reservation:
    return inventory_pb2.Reservation(
        order_id=r.order_id,
        status=inventory_pb2.ReservationStatus.Value(f"RESERVATION_STATUS_{r.status.value}"),
        lines=[
            inventory_pb2.StockLine(product_id=x.product_id, quantity=x.quantity) for x in r.lines
        ],
        reason=r.reason,
        create_time=timestamp(r.create_time),
        update_time=timestamp(r.update_time),
    )


class InventoryApi(inventory_service_pb2_grpc.InventoryServiceServicer):
    def __init__(self, inventory: Inventory) -> None:
        self._inventory = inventory

    async def CreateProduct(
        self, request: inventory_service_pb2.CreateProductRequest, context: grpc.aio.ServicerContext
    ) -> inventory_service_pb2.CreateProductResponse:
        new = NewProduct(
            sku=request.sku,
            name=request.name,
            unit_price_minor=request.unit_price_minor,
            currency_code=request.currency_code,
            initial_stock=request.initial_stock,
        )
        product = await self._inventory.create_product(caller_of(context), new)
        return inventory_service_pb2.CreateProductResponse(product=product_pb(product))

    async def GetProduct(
        self, request: inventory_service_pb2.GetProductRequest, context: grpc.aio.ServicerContext
    ) -> inventory_service_pb2.GetProductResponse:
        product = await self._inventory.get_product(request.product_id)
        return inventory_service_pb2.GetProductResponse(product=product_pb(product))

    async def BatchGetProducts(
        self,
        request: inventory_service_pb2.BatchGetProductsRequest,
        context: grpc.aio.ServicerContext,
    ) -> inventory_service_pb2.BatchGetProductsResponse:
        products, missing = await self._inventory.batch_get_products(
            list(request.product_ids), request.allow_missing
        )
        return inventory_service_pb2.BatchGetProductsResponse(
            products=[product_pb(p) for p in products], missing_product_ids=missing
        )

    async def ListProducts(
        self, request: inventory_service_pb2.ListProductsRequest, context: grpc.aio.ServicerContext
    ) -> inventory_service_pb2.ListProductsResponse:
        products, token = await self._inventory.list_products(request.page_size, request.page_token)
        return inventory_service_pb2.ListProductsResponse(
            products=[product_pb(p) for p in products], next_page_token=token
        )

    async def AdjustStock(
        self, request: inventory_service_pb2.AdjustStockRequest, context: grpc.aio.ServicerContext
    ) -> inventory_service_pb2.AdjustStockResponse:
        product = await self._inventory.adjust_stock(
            caller_of(context), request.product_id, request.delta, request.reason
        )
        return inventory_service_pb2.AdjustStockResponse(product=product_pb(product))

    async def GetReservation(
        self,
        request: inventory_service_pb2.GetReservationRequest,
        context: grpc.aio.ServicerContext,
    ) -> inventory_service_pb2.GetReservationResponse:
        reservation = await self._inventory.get_reservation(caller_of(context), request.order_id)
        return inventory_service_pb2.GetReservationResponse(reservation=reservation_pb(reservation))
