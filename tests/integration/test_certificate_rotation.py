"""Rotation without a restart: a gRPC server listening with transport_security re-reads its
certificate files at the next handshake after they change (docs/deploy.md, "Certificates")."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from runtime.transport_security import TlsSettings, channel, listen
from tools.certs.authority import mint

LOOPBACK = [ipaddress.ip_address("127.0.0.1")]


def served_certificate(port: int, client: TlsSettings) -> x509.Certificate:
    """The certificate the server presents to a new connection from `client`."""
    context = ssl.create_default_context(cafile=str(client.ca_file))
    context.load_cert_chain(client.cert_file, client.key_file)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


@pytest.fixture
async def orders_server(tmp_path: Path) -> AsyncIterator[int]:
    files = mint(tmp_path, ["orders"], LOOPBACK, [])["orders"]
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = listen(server, "127.0.0.1:0", files)
    await server.start()
    try:
        yield port
    finally:
        await server.stop(0)


async def test_a_reminted_certificate_is_served_to_the_next_connection(
    orders_server: int, tmp_path: Path
) -> None:
    registry = mint(tmp_path, ["registry"], LOOPBACK, [])["registry"]
    before = await asyncio.to_thread(served_certificate, orders_server, registry)
    mint(tmp_path, ["orders"], LOOPBACK, [])
    after = await asyncio.to_thread(served_certificate, orders_server, registry)
    assert after.serial_number != before.serial_number
    assert (
        after.serial_number
        == x509.load_pem_x509_certificate((tmp_path / "orders.pem").read_bytes()).serial_number
    )
    async with channel(f"127.0.0.1:{orders_server}", tls=registry) as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
