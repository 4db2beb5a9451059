"""Starts the orders service: `python -m services.orders` (or the Bazel py_binary)."""

from functools import partial

from shop.inventory.v1.inventory_service_pb2_grpc import InventoryServiceStub
from shop.orders.v1 import orders_service_pb2_grpc

from runtime.clients import ServiceClient
from runtime.server import Platform, ServiceParts, run_service
from runtime.trace_files import TraceFiles
from services.orders import consumers, store, workers
from services.orders.application import Orders, OrdersConfig
from services.orders.clients import INVENTORY_SERVICE, InventoryPricing
from services.orders.grpc_api import ADMIN_SERVICE_NAME, SERVICE_NAME, OrdersAdminApi, OrdersApi
from services.orders.settings import OrdersSettings


def wire(platform: Platform) -> ServiceParts:
    settings = OrdersSettings.from_env()
    inventory = ServiceClient(
        "inventory",
        platform.resolver.for_service(INVENTORY_SERVICE),
        settings.pricing,
        InventoryServiceStub,
    )
    orders = Orders(
        platform.db,
        InventoryPricing(inventory),
        platform.page_tokens,
        OrdersConfig(
            settings.snapshot_every, settings.step_timeout_s, settings.cancellation_alert_s
        ),
    )
    return ServiceParts(
        servicers=[
            (
                orders_service_pb2_grpc.add_OrdersServiceServicer_to_server,
                OrdersApi(orders),
                SERVICE_NAME,
            ),
            (
                orders_service_pb2_grpc.add_OrdersAdminServiceServicer_to_server,
                OrdersAdminApi(orders, TraceFiles(platform.settings.data_dir)),
                ADMIN_SERVICE_NAME,
            ),
        ],
        subscriptions=consumers.subscriptions(orders),
        singletons={
            "saga-deadline-watcher": partial(
                workers.watch_saga_deadlines,
                orders,
                settings.saga_poll_interval_s,
                settings.cancellation_alert_s,
            )
        },
        on_close=[inventory.close],
        probes=[orders.saga_readings],
    )


if __name__ == "__main__":
    run_service("orders", store.MIGRATIONS, wire)
