"""Reflection for the gateway: the public services of the catalogue, and nothing else.

Each service answers reflection for operators on its own port, listing everything it serves
(OrdersAdminService, health, OperationsService). Through the gateway a client may see only what
the gateway routes, so Envoy rewrites reflection's path (`/grpc.reflection.v1alpha.
ServerReflection/...` and v1's, whose messages are the same on the wire) to
`/concord.gateway.PublicReflection/...` and sends it to the registry, which answers here.

The answers come from a descriptor pool of its own, not the process's default one: the files
that declare the catalogue's public services and their imports, with every other service
removed from them. So `list` names exactly the public services and `describe` cannot find an
internal one, whatever file it was declared in. The registry serves this beside its own
reflection without advertising it (runtime/server.py `ServiceParts.handlers`).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import _async as reflection_aio
from grpc_reflection.v1alpha import reflection_pb2

from runtime import catalogue

SERVICE_NAME = "concord.gateway.PublicReflection"
"""The path prefix the gateway rewrites reflection to; the reflection protocol, not a contract."""


def reflected(service: catalogue.GrpcService) -> bool:
    """Public and routed by gRPC: a REST-only service is not callable by its gRPC name through
    the gateway, so listing it would advertise methods that answer UNIMPLEMENTED."""
    return service.public and not service.rest_only


def public_pool(services: Sequence[catalogue.GrpcService]) -> descriptor_pool.DescriptorPool:
    """The files declaring the reflected `services` (public, gRPC-routed), and their imports,
    without other services."""
    public = {s.full_name for s in services if reflected(s)}
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def add(file: FileDescriptor) -> None:
        if file.name in files:
            return
        for dependency in file.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        kept = [s for s in proto.service if f"{proto.package}.{s.name}" in public]
        del proto.service[:]
        proto.service.extend(kept)
        files[file.name] = proto  # after its imports: the pool needs them first

    for service in services:
        if reflected(service):
            add(importlib.import_module(service.proto_module).DESCRIPTOR)
    pool = descriptor_pool.DescriptorPool()
    for proto in files.values():
        pool.AddSerializedFile(proto.SerializeToString())
    return pool


def handler(
    services: Sequence[catalogue.GrpcService] | None = None,
) -> grpc.GenericRpcHandler:
    """The reflection protocol under SERVICE_NAME, for the public services only."""
    chosen = (
        services if services is not None else [s for p in catalogue.CATALOGUE for s in p.services]
    )
    names = [s.full_name for s in chosen if reflected(s)]
    servicer = reflection_aio.ReflectionServicer(names, pool=public_pool(chosen))
    return grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )
