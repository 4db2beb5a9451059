"""A customer's and an operator's view of the running services, for tests: set up products
and accounts, place orders, wait for an order to settle."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
from shop.inventory.v1 import inventory_pb2, inventory_service_pb2, inventory_service_pb2_grpc
from shop.orders.v1 import orders_pb2, orders_service_pb2, orders_service_pb2_grpc
from shop.payments.v1 import payments_pb2, payments_service_pb2, payments_service_pb2_grpc

from tests.support.grpc_client import CALL_TIMEOUT_S as T
from tools.runner.topology import Topology

SETTLE_TIMEOUT_S = 60.0
TERMINAL = (
    orders_pb2.ORDER_STATUS_CONFIRMED,
    orders_pb2.ORDER_STATUS_REJECTED,
    orders_pb2.ORDER_STATUS_CANCELLED,
)


def as_customer(customer_id: str) -> tuple[tuple[str, str], ...]:
    return (("x-customer-id", customer_id),)


@dataclass
class Shop:
    inventory: inventory_service_pb2_grpc.InventoryServiceStub
    payments: payments_service_pb2_grpc.PaymentsServiceStub
    orders: orders_service_pb2_grpc.OrdersServiceStub
    admin: orders_service_pb2_grpc.OrdersAdminServiceStub

    async def product(self, stock: int, price_minor: int = 1_000, currency: str = "USD") -> str:
        reply = await self.inventory.CreateProduct(
            inventory_service_pb2.CreateProductRequest(
                sku=f"SKU-{uuid.uuid4().hex[:8]}",
                name="Thing",
                unit_price_minor=price_minor,
                currency_code=currency,
                initial_stock=stock,
            ),
            timeout=T,
        )
        return str(reply.product.product_id)

    async def stock(self, product_id: str) -> inventory_pb2.Product:
        return (
            await self.inventory.GetProduct(
                inventory_service_pb2.GetProductRequest(product_id=product_id), timeout=T
            )
        ).product

    async def account(self, customer_id: str, limit_minor: int, currency: str = "USD") -> None:
        await self.payments.OpenAccount(
            payments_service_pb2.OpenAccountRequest(
                customer_id=customer_id, credit_limit_minor=limit_minor, currency_code=currency
            ),
            timeout=T,
        )

    async def credit(self, customer_id: str) -> payments_pb2.CreditAccount:
        return (
            await self.payments.GetAccount(
                payments_service_pb2.GetAccountRequest(customer_id=customer_id), timeout=T
            )
        ).account

    async def place(
        self, customer_id: str, lines: list[tuple[str, int]], key: str = ""
    ) -> orders_pb2.Order:
        request = orders_service_pb2.PlaceOrderRequest(
            lines=[orders_service_pb2.PlaceOrderLine(product_id=p, quantity=q) for p, q in lines],
            idempotency_key=key,
        )
        return (
            await self.orders.PlaceOrder(request, timeout=T, metadata=as_customer(customer_id))
        ).order

    async def get(self, customer_id: str, order_id: str, **as_of: object) -> orders_pb2.Order:
        request = orders_service_pb2.GetOrderRequest(order_id=order_id, **as_of)  # type: ignore[arg-type]
        return (
            await self.orders.GetOrder(request, timeout=T, metadata=as_customer(customer_id))
        ).order

    async def settled(
        self,
        customer_id: str,
        order_id: str,
        statuses: tuple[int, ...] = TERMINAL,
        timeout_s: float = SETTLE_TIMEOUT_S,
        poll_s: float = 0.05,
    ) -> orders_pb2.Order:
        """Polls until the order reaches one of `statuses` (a bounded wait)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            try:
                order = await self.get(customer_id, order_id)
                if order.status in statuses:
                    return order
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                order = None
            if asyncio.get_running_loop().time() > deadline:
                state = orders_pb2.OrderStatus.Name(order.status) if order else "unreachable"
                raise AssertionError(f"order {order_id} still {state} after {timeout_s}s")
            await asyncio.sleep(poll_s)

    async def place_until(
        self, customer_id: str, product: str, done: asyncio.Event
    ) -> tuple[int, list[str]]:
        """Places one-unit orders back to back until `done`; returns how many were placed and
        how each failed one failed (for tests that break something under order traffic)."""
        placed, failures = 0, []
        while not done.is_set():
            try:
                await self.place(customer_id, [(product, 1)])
                placed += 1
            except grpc.aio.AioRpcError as error:
                failures.append(f"order: {error.code().name}: {error.details()}")
            await asyncio.sleep(0.05)
        return placed, failures

    async def event_types(self, customer_id: str, order_id: str) -> list[str]:
        reply = await self.orders.ListOrderEvents(
            orders_service_pb2.ListOrderEventsRequest(order_id=order_id),
            timeout=T,
            metadata=as_customer(customer_id),
        )
        return [str(e.WhichOneof("event")) for e in reply.events]


@asynccontextmanager
async def shop_client(topology: Topology) -> AsyncIterator[Shop]:
    """Channels straight to each service (tests of the services themselves; e2e tests go
    through the gateway)."""
    async with (
        grpc.aio.insecure_channel(topology.address("inventory")) as inv,
        grpc.aio.insecure_channel(topology.address("payments")) as pay,
        grpc.aio.insecure_channel(topology.address("orders")) as orders,
    ):
        yield Shop(
            inventory_service_pb2_grpc.InventoryServiceStub(inv),
            payments_service_pb2_grpc.PaymentsServiceStub(pay),
            orders_service_pb2_grpc.OrdersServiceStub(orders),
            orders_service_pb2_grpc.OrdersAdminServiceStub(orders),
        )
