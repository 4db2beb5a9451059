"""Starts the payments service: `python -m services.payments` (or the Bazel py_binary)."""

from shop.payments.v1 import payments_service_pb2_grpc

from services.common.server import Platform, ServiceParts, run_service
from services.payments import handlers, store
from services.payments.api import SERVICE_NAME, PaymentsApi


def wire(platform: Platform) -> ServiceParts:
    return ServiceParts(
        servicers=[
            (
                payments_service_pb2_grpc.add_PaymentsServiceServicer_to_server,
                PaymentsApi(platform.db),
                SERVICE_NAME,
            )
        ],
        subscriptions=handlers.subscriptions(),
    )


if __name__ == "__main__":
    run_service("payments", store.MIGRATIONS, wire)
