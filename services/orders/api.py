"""OrdersService and OrdersAdminService over gRPC: who is calling, validation, translation."""

from __future__ import annotations

import grpc
from google.protobuf.message import Message
from shop.orders.v1 import events_pb2 as ev
from shop.orders.v1 import orders_pb2, orders_service_pb2, orders_service_pb2_grpc

from runtime import paging
from runtime.caller import caller_of
from runtime.database import Connection, Database
from runtime.errors import (
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
)
from runtime.ids import timestamp
from runtime.validation import Violations, check_timestamp
from services.orders import domain, store
from services.orders.application import Orders
from services.orders.domain import Line, Order
from services.orders.pricing import Pricing, UnknownProductsError

SERVICE_NAME = orders_service_pb2.DESCRIPTOR.services_by_name["OrdersService"].full_name
ADMIN_SERVICE_NAME = orders_service_pb2.DESCRIPTOR.services_by_name["OrdersAdminService"].full_name
EVENT_FIELDS = {
    field.message_type.full_name: field.name
    for field in ev.OrderEvent.DESCRIPTOR.oneofs_by_name["event"].fields
}


def order_pb(o: Order) -> orders_pb2.Order:
    return orders_pb2.Order(
        order_id=o.order_id,
        customer_id=o.customer_id,
        status=f"ORDER_STATUS_{o.status.value}",
        lines=[
            orders_pb2.OrderLine(
                product_id=x.product_id, quantity=x.quantity, unit_price_minor=x.unit_price_minor
            )
            for x in o.lines
        ],
        total_minor=o.total_minor,
        currency_code=o.currency_code,
        rejection_reason=o.rejection_reason,
        version=o.version,
        create_time=timestamp(o.create_time),
        update_time=timestamp(o.update_time),
    )


def event_pb(event: Message) -> ev.OrderEvent:
    wrapper = ev.OrderEvent()
    getattr(wrapper, EVENT_FIELDS[event.DESCRIPTOR.full_name]).CopyFrom(event)
    return wrapper


def customer_of(context: grpc.aio.ServicerContext) -> str:
    """The calling customer, whom the gateway names from the token's subject. Orders belong to
    customers, so even a trusted internal caller must say on whose behalf it acts."""
    return caller_of(context).require_customer()


ORDER_POSITION = (float, str)
"""A ListOrders page token holds (create_time, order_id) of the page's last order."""


class OrdersApi(orders_service_pb2_grpc.OrdersServiceServicer):
    def __init__(
        self, db: Database, orders: Orders, pricing: Pricing, page_tokens: paging.PageTokens
    ) -> None:
        self._db = db
        self._orders = orders
        self._pricing = pricing
        self._page_tokens = page_tokens

    async def _own_order(self, customer_id: str, order_id: str) -> Order:
        order = await self._db.read(lambda conn: store.load(conn, order_id))
        if order is None or order.customer_id != customer_id:
            raise NotFoundError(
                "order", order_id
            )  # another customer's order does not exist for you
        return order

    async def PlaceOrder(
        self, request: orders_service_pb2.PlaceOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_service_pb2.PlaceOrderResponse:
        customer_id = customer_of(context)
        lines = [Line(x.product_id, x.quantity) for x in request.lines]
        domain.validate_new_order(lines)
        key = request.idempotency_key
        if key:
            existing = await self._db.read(lambda conn: store.order_for_key(conn, customer_id, key))
            if existing is not None:
                return orders_service_pb2.PlaceOrderResponse(
                    order=order_pb(await self._own_order(customer_id, existing))
                )
        try:
            prices = await self._pricing.prices([x.product_id for x in lines])
        except UnknownProductsError as error:
            raise domain.unknown_products(lines, error.product_ids) from error
        priced_lines, total, currency = domain.priced(lines, prices)
        order = await self._db.write(
            lambda conn: self._orders.place(conn, customer_id, priced_lines, total, currency, key)
        )
        return orders_service_pb2.PlaceOrderResponse(order=order_pb(order))

    async def GetOrder(
        self, request: orders_service_pb2.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_service_pb2.GetOrderResponse:
        customer_id = customer_of(context)
        if request.HasField("as_of_time"):
            v = Violations()
            check_timestamp(v, request.as_of_time, "as_of_time")
            v.raise_if_any()
        current = await self._own_order(customer_id, request.order_id)
        if request.as_of_version < 0 or request.as_of_version > current.version:
            raise InvalidArgumentError(
                [
                    FieldViolation(
                        "as_of_version",
                        f"must be 1 to {current.version}, the order's current version",
                    )
                ]
            )
        as_of_time = (
            request.as_of_time.ToNanoseconds() / 1e9 if request.HasField("as_of_time") else None
        )
        if not request.as_of_version and as_of_time is None:
            return orders_service_pb2.GetOrderResponse(order=order_pb(current))
        past = await self._db.read(
            lambda conn: store.load(
                conn, request.order_id, request.as_of_version or None, as_of_time
            )
        )
        if past is None:
            raise NotFoundError("order as of that time", request.order_id)
        return orders_service_pb2.GetOrderResponse(order=order_pb(past))

    async def ListOrders(
        self, request: orders_service_pb2.ListOrdersRequest, context: grpc.aio.ServicerContext
    ) -> orders_service_pb2.ListOrdersResponse:
        customer_id = customer_of(context)
        size = paging.page_size(request.page_size)
        position = self._page_tokens.decode(request.page_token, ORDER_POSITION)
        after = (float(position[0]), str(position[1])) if position else None
        page = await self._db.read(
            lambda conn: store.list_orders(conn, customer_id, after, size + 1)
        )
        token = ""
        if len(page) > size:
            last = page[size - 1]
            token = self._page_tokens.encode((last.create_time, last.order_id))
        return orders_service_pb2.ListOrdersResponse(
            orders=[order_pb(o) for o in page[:size]], next_page_token=token
        )

    async def CancelOrder(
        self, request: orders_service_pb2.CancelOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_service_pb2.CancelOrderResponse:
        customer_id = customer_of(context)
        await self._own_order(customer_id, request.order_id)

        def cancel(conn: Connection) -> Order:
            order = store.load(conn, request.order_id)
            assert order is not None
            return self._orders.cancel(conn, order, request.reason)

        return orders_service_pb2.CancelOrderResponse(order=order_pb(await self._db.write(cancel)))

    async def ListOrderEvents(
        self, request: orders_service_pb2.ListOrderEventsRequest, context: grpc.aio.ServicerContext
    ) -> orders_service_pb2.ListOrderEventsResponse:
        customer_id = customer_of(context)
        await self._own_order(customer_id, request.order_id)
        events = await self._db.read(lambda conn: store.history(conn, request.order_id))
        return orders_service_pb2.ListOrderEventsResponse(events=[event_pb(e) for e in events])


class OrdersAdminApi(orders_service_pb2_grpc.OrdersAdminServiceServicer):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def RebuildReadModels(
        self,
        request: orders_service_pb2.RebuildReadModelsRequest,
        context: grpc.aio.ServicerContext,
    ) -> orders_service_pb2.RebuildReadModelsResponse:
        orders, events = await self._db.write(store.rebuild_read_models)
        return orders_service_pb2.RebuildReadModelsResponse(
            orders_rebuilt=orders, events_replayed=events
        )
