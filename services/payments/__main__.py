"""Starts the payments service: `python -m services.payments` (or the Bazel py_binary)."""

from paygate.v1.paygate_pb2_grpc import PaymentGatewayServiceStub
from shop.payments.v1 import payments_service_pb2_grpc

from runtime.clients import ServiceClient, StaticResolver
from runtime.server import Platform, ServiceParts, run_service
from services.payments import consumers, store
from services.payments.application import Payments
from services.payments.clients import PayGate
from services.payments.grpc_api import SERVICE_NAME, PaymentsApi
from services.payments.settings import PaymentsSettings
from services.payments.workers import AuthorizationWorker


def wire(platform: Platform) -> ServiceParts:
    settings = PaymentsSettings.from_env()
    paygate = ServiceClient(
        "paygate",
        StaticResolver(settings.provider_address),
        settings.provider,
        PaymentGatewayServiceStub,
    )
    payments = Payments(platform.db, PayGate(paygate))
    worker = AuthorizationWorker(payments, settings.provider_poll_interval_s)
    return ServiceParts(
        servicers=[
            (
                payments_service_pb2_grpc.add_PaymentsServiceServicer_to_server,
                PaymentsApi(payments),
                SERVICE_NAME,
            )
        ],
        subscriptions=consumers.subscriptions(payments),
        singletons={"authorization-worker": worker.run},
        on_close=[paygate.close],
    )


if __name__ == "__main__":
    run_service("payments", store.MIGRATIONS, wire)
