"""InventoryService over gRPC: validate, run one transaction, translate to protobuf."""

from __future__ import annotations

import grpc
from shop.inventory.v1 import (
    events_pb2,
    inventory_pb2,
    inventory_service_pb2,
    inventory_service_pb2_grpc,
)

from runtime import outbox, paging
from runtime.caller import Role, caller_of
from runtime.database import Connection, Database
from runtime.errors import AlreadyExistsError, NotFoundError
from runtime.ids import new_id, new_message_id, now, timestamp
from services.inventory import store
from services.inventory.domain import NewProduct, Product, Reservation

PRODUCT_POSITION = (str,)
"""A ListProducts page token holds the product_id of the page's last product."""
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
    def __init__(self, db: Database, page_tokens: paging.PageTokens) -> None:
        self._db = db
        self._page_tokens = page_tokens

    async def CreateProduct(
        self, request: inventory_service_pb2.CreateProductRequest, context: grpc.aio.ServicerContext
    ) -> inventory_service_pb2.CreateProductResponse:
        caller_of(context).require_role(Role.ADMIN)  # the catalogue is the shop's, not a customer's
        new = NewProduct(
            sku=request.sku,
            name=request.name,
            unit_price_minor=request.unit_price_minor,
            currency_code=request.currency_code,
            initial_stock=request.initial_stock,
        )

        def create(conn: Connection) -> Product:
            if store.sku_exists(conn, new.sku):
                raise AlreadyExistsError("product with sku", new.sku)
            at = now()
            product = Product(
                product_id=new_id("prd"),
                sku=new.sku,
                name=new.name,
                unit_price_minor=new.unit_price_minor,
                currency_code=new.currency_code,
                stock_on_hand=new.initial_stock,
                stock_reserved=0,
                create_time=at,
                update_time=at,
                version=1,
            )
            store.insert_product(conn, product)
            outbox.stage(
                conn,
                events_pb2.ProductCreated(
                    event_id=new_message_id(),
                    product_id=product.product_id,
                    version=product.version,
                    occur_time=timestamp(at),
                    sku=product.sku,
                    name=product.name,
                    unit_price_minor=product.unit_price_minor,
                    currency_code=product.currency_code,
                    stock_on_hand=product.stock_on_hand,
                ),
            )
            return product

        product = await self._db.write(create)
        return inventory_service_pb2.CreateProductResponse(product=product_pb(product))

    async def GetProduct(
        self, request: inventory_service_pb2.GetProductRequest, context: grpc.aio.ServicerContext
    ) -> inventory_service_pb2.GetProductResponse:
        product = await self._db.read(lambda conn: store.get_product(conn, request.product_id))
        if product is None:
            raise NotFoundError("product", request.product_id)
        return inventory_service_pb2.GetProductResponse(product=product_pb(product))

    async def BatchGetProducts(
        self,
        request: inventory_service_pb2.BatchGetProductsRequest,
        context: grpc.aio.ServicerContext,
    ) -> inventory_service_pb2.BatchGetProductsResponse:
        ids = list(request.product_ids)
        found = await self._db.read(lambda conn: store.get_products(conn, sorted(set(ids))))
        missing = [pid for pid in ids if pid not in found]
        if missing and not request.allow_missing:
            raise NotFoundError("products", ", ".join(missing))
        return inventory_service_pb2.BatchGetProductsResponse(
            products=[product_pb(found[pid]) for pid in ids if pid in found],
            missing_product_ids=missing,
        )

    async def ListProducts(
        self, request: inventory_service_pb2.ListProductsRequest, context: grpc.aio.ServicerContext
    ) -> inventory_service_pb2.ListProductsResponse:
        size = paging.page_size(request.page_size)
        position = self._page_tokens.decode(request.page_token, PRODUCT_POSITION)
        after = str(position[0]) if position else None
        page = await self._db.read(lambda conn: store.list_products(conn, after, size + 1))
        token = self._page_tokens.encode((page[size - 1].product_id,)) if len(page) > size else ""
        return inventory_service_pb2.ListProductsResponse(
            products=[product_pb(p) for p in page[:size]], next_page_token=token
        )

    async def AdjustStock(
        self, request: inventory_service_pb2.AdjustStockRequest, context: grpc.aio.ServicerContext
    ) -> inventory_service_pb2.AdjustStockResponse:
        caller_of(context).require_role(Role.ADMIN)

        def adjust(conn: Connection) -> Product:
            product = store.get_product(conn, request.product_id)
            if product is None:
                raise NotFoundError("product", request.product_id)
            at = now()
            product.adjusted(request.delta, at)  # raises when it would undercut reservations
            store.move_stock(conn, product.product_id, request.delta, 0, request.reason, at)
            adjusted = store.get_product(conn, product.product_id) or product
            outbox.stage(
                conn,
                events_pb2.StockAdjusted(
                    event_id=new_message_id(),
                    product_id=adjusted.product_id,
                    version=adjusted.version,
                    occur_time=timestamp(at),
                    delta=request.delta,
                    reason=request.reason,
                    stock_on_hand=adjusted.stock_on_hand,
                ),
            )
            return adjusted

        product = await self._db.write(adjust)
        return inventory_service_pb2.AdjustStockResponse(product=product_pb(product))

    async def GetReservation(
        self,
        request: inventory_service_pb2.GetReservationRequest,
        context: grpc.aio.ServicerContext,
    ) -> inventory_service_pb2.GetReservationResponse:
        # Inventory cannot tell whose order a reservation serves, so customers (who see their
        # order's status in orders) may not read reservations; admins and internal callers may.
        caller_of(context).require_role(Role.ADMIN)
        reservation = await self._db.read(
            lambda conn: store.get_reservation(conn, request.order_id)
        )
        if reservation is None:
            raise NotFoundError("reservation", request.order_id)
        return inventory_service_pb2.GetReservationResponse(reservation=reservation_pb(reservation))
