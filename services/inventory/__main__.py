"""Starts the inventory service: `python -m services.inventory` (or the Bazel py_binary)."""

from shop.inventory.v1 import inventory_service_pb2_grpc

from runtime.server import Platform, ServiceParts, run_service
from services.inventory import consumers, store
from services.inventory.application import Inventory
from services.inventory.grpc_api import SERVICE_NAME, InventoryApi


def wire(platform: Platform) -> ServiceParts:
    inventory = Inventory(platform.db, platform.page_tokens)
    return ServiceParts(
        servicers=[
            (
                inventory_service_pb2_grpc.add_InventoryServiceServicer_to_server,
                InventoryApi(inventory),
                SERVICE_NAME,
            )
        ],
        subscriptions=consumers.subscriptions(inventory),
    )


if __name__ == "__main__":
    run_service("inventory", store.MIGRATIONS, wire)
