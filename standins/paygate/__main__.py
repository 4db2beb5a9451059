"""Starts the PayGate stand-in: `python -m standins.paygate` on CONCORD_PAYGATE_PORT (50054),
its catalogue entry's port setting and default (runtime/catalogue.py)."""

import asyncio
import os
import signal
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from paygate.v1 import paygate_pb2, paygate_pb2_grpc

from runtime import rpc_tracing, tracing, transport_security
from runtime.catalogue import process
from runtime.grpc_errors import DomainErrorInterceptor
from runtime.metrics import Metrics, RpcMetricsInterceptor
from runtime.server import SERVER_OPTIONS
from runtime.settings import MetricsSettings
from standins.paygate.ledger import Ledger
from standins.paygate.server import Behaviour, FaultInjection, PaymentGateway


async def main() -> None:
    paygate = process("paygate")
    address = f"127.0.0.1:{os.environ.get(paygate.port_env, paygate.default_port)}"
    behaviour = Behaviour()
    metrics_settings = MetricsSettings.from_env("paygate")
    metrics = Metrics("paygate", asyncio.get_running_loop(), metrics_settings.scrape_timeout_s)
    # The services' interceptor, for its decoding: garbage request bytes are INVALID_ARGUMENT.
    interceptors: list[grpc.aio.ServerInterceptor] = [
        *rpc_tracing.server_interceptors(),
        DomainErrorInterceptor(),
    ]
    if metrics_settings.enabled:
        interceptors.insert(0, RpcMetricsInterceptor(metrics))
    server = grpc.aio.server(interceptors=interceptors, options=SERVER_OPTIONS)
    paygate_pb2_grpc.add_PaymentGatewayServiceServicer_to_server(
        PaymentGateway(Ledger(), behaviour), server
    )
    paygate_pb2_grpc.add_FaultInjectionServiceServicer_to_server(FaultInjection(behaviour), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [s.full_name for s in paygate_pb2.DESCRIPTOR.services_by_name.values()]
    reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], server)
    # With CONCORD_TLS_* set it serves mutual TLS like any process, so payments can reach it.
    transport_security.listen(server, address, transport_security.configured())
    await server.start()
    if metrics_settings.enabled:
        metrics.serve("127.0.0.1", metrics_settings.port)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print(f'{{"service": "paygate", "event": "listening", "address": "{address}"}}', flush=True)
    await stop.wait()
    await server.stop(2)
    metrics.close()


if __name__ == "__main__":
    tracing.configure("paygate", Path(os.environ.get("CONCORD_DATA_DIR", ".data")).absolute())
    try:
        asyncio.run(main())
    finally:
        tracing.shutdown()
