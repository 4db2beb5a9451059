"""Readiness checks for the processes the stack starts."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from runtime.transport_security import TlsSettings, blocking_channel


def grpc_serving(
    address: str, service: str = "", timeout_s: float = 1.0, tls: TlsSettings | None = None
) -> bool:
    """True when `address` answers grpc.health.v1 Check with SERVING; over mutual TLS with
    `tls` (the process's own settings: any certificate of ours may probe health)."""
    try:
        with blocking_channel(address, tls) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
    except grpc.RpcError:
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
