"""Starts the orders service: `python -m services.orders` (or the Bazel py_binary)."""

from functools import partial

from shop.inventory.v1 import inventory_service_pb2
from shop.inventory.v1.inventory_service_pb2_grpc import InventoryServiceStub
from shop.orders.v1 import orders_service_pb2_grpc

from runtime.clients import ServiceClient
from runtime.server import Platform, ServiceParts, run_service
from services.orders import handlers, store
from services.orders.api import ADMIN_SERVICE_NAME, SERVICE_NAME, OrdersAdminApi, OrdersApi
from services.orders.application import Orders, OrdersConfig
from services.orders.pricing import Pricing
from services.orders.settings import OrdersSettings
from services.orders.timeouts import watch_saga_deadlines

INVENTORY_SERVICE = inventory_service_pb2.DESCRIPTOR.services_by_name["InventoryService"].full_name
"""Pricing asks whichever inventory instance the registry lists as live."""


def wire(platform: Platform) -> ServiceParts:
    settings = OrdersSettings.from_env()
    orders = Orders(OrdersConfig(settings.snapshot_every, settings.step_timeout_s))
    inventory = ServiceClient(
        "inventory",
        platform.resolver.for_service(INVENTORY_SERVICE),
        settings.pricing,
        InventoryServiceStub,
    )
    return ServiceParts(
        servicers=[
            (
                orders_service_pb2_grpc.add_OrdersServiceServicer_to_server,
                OrdersApi(platform.db, orders, Pricing(inventory), platform.page_tokens),
                SERVICE_NAME,
            ),
            (
                orders_service_pb2_grpc.add_OrdersAdminServiceServicer_to_server,
                OrdersAdminApi(platform.db),
                ADMIN_SERVICE_NAME,
            ),
        ],
        subscriptions=handlers.subscriptions(orders),
        background=[
            partial(
                watch_saga_deadlines,
                platform.db,
                orders,
                settings.saga_poll_interval_s,
                settings.cancellation_alert_s,
            )
        ],
        on_close=[inventory.close],
    )


if __name__ == "__main__":
    run_service("orders", store.MIGRATIONS, wire)
