"""The generated descriptors of the catalogue's gRPC services, loaded by the catalogue's own
`proto_module` names, so a suite that walks every service needs no import per service."""

from __future__ import annotations

import importlib

from google.protobuf.descriptor import ServiceDescriptor

from runtime import catalogue


def service_descriptor(full_name: str) -> ServiceDescriptor:
    """The descriptor of a service the catalogue lists, its generated module imported first."""
    for process in catalogue.CATALOGUE:
        for service in process.services:
            if service.full_name == full_name:
                module = importlib.import_module(service.proto_module)
                descriptor: ServiceDescriptor = module.DESCRIPTOR.services_by_name[
                    full_name.rsplit(".", 1)[-1]
                ]
                return descriptor
    raise KeyError(f"{full_name} is not a service of the catalogue")
