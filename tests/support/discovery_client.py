"""Small async helpers over the registry's DiscoveryService and tiny real health servers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
from concord.registry.v1 import discovery_service_pb2, discovery_service_pb2_grpc, registry_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from runtime.server import SERVER_OPTIONS


async def live_addresses(registry_address: str, service_name: str) -> set[str]:
    """Resolve's answer as a set of addresses; empty when the registry says none is live."""
    async with grpc.aio.insecure_channel(registry_address) as channel:
        stub = discovery_service_pb2_grpc.DiscoveryServiceStub(channel)
        try:
            reply = await stub.Resolve(
                discovery_service_pb2.ResolveRequest(service_name=service_name), timeout=5
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNAVAILABLE:
                return set()
            raise
    return {i.address for i in reply.instances}


async def instances(registry_address: str) -> list[registry_pb2.ServiceInstance]:
    async with grpc.aio.insecure_channel(registry_address) as channel:
        stub = discovery_service_pb2_grpc.DiscoveryServiceStub(channel)
        reply = await stub.ListInstances(discovery_service_pb2.ListInstancesRequest(), timeout=5)
    return list(reply.instances)


@dataclass
class HealthServer:
    """A real grpc.aio server answering only grpc.health.v1, standing in for a service."""

    address: str
    servicer: health.aio.HealthServicer
    server: grpc.aio.Server

    async def set(self, service_name: str, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self.servicer.set(service_name, status)


@asynccontextmanager
async def health_server(service_name: str, port: int = 0) -> AsyncIterator[HealthServer]:
    server = grpc.aio.server(options=SERVER_OPTIONS)
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    running = HealthServer(f"127.0.0.1:{bound}", servicer, server)
    await running.set(service_name, serving=True)
    try:
        yield running
    finally:
        await server.stop(0)
