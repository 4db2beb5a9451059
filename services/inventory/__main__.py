"""Starts the inventory service: `python -m services.inventory` (or the Bazel py_binary)."""

from shop.inventory.v1 import inventory_service_pb2_grpc

from runtime.server import Platform, ServiceParts, run_service
from services.inventory import handlers, store
from services.inventory.api import SERVICE_NAME, InventoryApi


def wire(platform: Platform) -> ServiceParts:
    return ServiceParts(
        servicers=[
            (
                inventory_service_pb2_grpc.add_InventoryServiceServicer_to_server,
                InventoryApi(platform.db, platform.page_tokens),
                SERVICE_NAME,
            )
        ],
        subscriptions=handlers.subscriptions(),
    )


if __name__ == "__main__":
    run_service("inventory", store.MIGRATIONS, wire)
