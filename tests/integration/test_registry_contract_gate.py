"""Contracts in discovery against a real registry and real buf, with tiny real health servers
standing in for instances (docs/registry.md, "Contracts in discovery"): bad contract fields get
a status naming the field, an unknown fingerprint asks for its image, the platform sends it
only then (and again after a registry restart), and Resolve says when instances are kept out
for their contract."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
from concord.registry.v1 import (
    contracts_service_pb2,
    contracts_service_pb2_grpc,
    discovery_service_pb2,
    discovery_service_pb2_grpc,
    registry_pb2,
)
from google.protobuf import descriptor_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from shop.inventory.v1 import inventory_service_pb2

from runtime import contract_fingerprint
from runtime.contract_fingerprint import ServiceContract
from runtime.registration import Registration
from runtime.registry_client import RegistryClientSettings
from tests.support.discovery_client import health_server, instances
from tests.support.polling import eventually
from tests.support.registry_process import ConcordProcess

SERVICE = inventory_service_pb2.DESCRIPTOR.services_by_name["InventoryService"].full_name
VERDICT_TIMEOUT_S = 30.0


def built() -> ServiceContract:
    return contract_fingerprint.own_contracts([SERVICE])[SERVICE]


def renumbered() -> ServiceContract:
    """The service's contract with GetProductResponse.product moved from field 1 to 7."""
    files = contract_fingerprint.files_of_image(built().image)
    own = contract_fingerprint.declaring_file(files, SERVICE)
    response = next(m for m in files[own].message_type if m.name == "GetProductResponse")
    response.field[0].number = 7
    return contract_fingerprint.service_contract(files, SERVICE)


@pytest.fixture
async def stub(
    registry: ConcordProcess,
) -> AsyncIterator[discovery_service_pb2_grpc.DiscoveryServiceStub]:
    async with grpc.aio.insecure_channel(registry.address) as channel:
        yield discovery_service_pb2_grpc.DiscoveryServiceStub(channel)


async def refusal(
    stub: discovery_service_pb2_grpc.DiscoveryServiceStub, fingerprint: str = "", image: bytes = b""
) -> tuple[grpc.StatusCode, str, dict[str, str], str]:
    """(code, message, field -> violation, ErrorInfo reason) of a refused Register."""
    call = stub.Register(
        discovery_service_pb2.RegisterRequest(
            service_name=SERVICE,
            address="127.0.0.1:1",
            contract_fingerprint=fingerprint,
            contract_image=image,
        ),
        timeout=10,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    status = await rpc_status.aio.from_call(call)
    assert status is not None
    violations: dict[str, str] = {}
    reason = ""
    for detail in status.details:
        bad_request = error_details_pb2.BadRequest()
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(bad_request):
            violations |= {v.field: v.description for v in bad_request.field_violations}
        elif detail.Unpack(info):
            reason = info.reason
    return caught.value.code(), caught.value.details() or "", violations, reason


async def test_bad_contract_fields_are_refused_naming_the_field(
    stub: discovery_service_pb2_grpc.DiscoveryServiceStub,
) -> None:
    code, _, violations, _ = await refusal(stub, fingerprint="md5:abc")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "sha256:<64 lowercase hex digits>" in violations["contract_fingerprint"]

    code, _, violations, _ = await refusal(stub, image=built().image)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "only with the contract_fingerprint" in violations["contract_image"]

    ours = built()
    code, _, violations, _ = await refusal(stub, fingerprint=ours.fingerprint, image=b"\xff\xff")
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "FileDescriptorSet" in violations["contract_image"]

    other = renumbered()
    code, _, violations, _ = await refusal(stub, fingerprint=ours.fingerprint, image=other.image)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert f"is {other.fingerprint}, not contract_fingerprint" in violations["contract_image"]

    unrelated = descriptor_pb2.FileDescriptorSet(
        file=[descriptor_pb2.FileDescriptorProto(name="x/v1/x.proto", package="x.v1")]
    ).SerializeToString()
    code, _, violations, _ = await refusal(stub, fingerprint=ours.fingerprint, image=unrelated)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert f"declares {SERVICE}" in violations["contract_image"]


async def test_an_unknown_fingerprint_without_its_image_asks_for_it(
    stub: discovery_service_pb2_grpc.DiscoveryServiceStub,
) -> None:
    code, message, _, reason = await refusal(stub, fingerprint=built().fingerprint)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert reason == "CONTRACT_IMAGE_REQUIRED"
    assert "register again with contract_image" in message


def client_settings(registry: ConcordProcess) -> RegistryClientSettings:
    return RegistryClientSettings(
        registry_address=registry.address,
        heartbeat_interval_s=0.3,
        registry_call_timeout_s=2.0,
        registration_retry_max_s=0.5,
        resolve_cache_ttl_s=0.2,
    )


@asynccontextmanager
async def registered(
    registry: ConcordProcess, address: str, contract: ServiceContract
) -> AsyncIterator[Registration]:
    registration = Registration(
        client_settings(registry), address, "test", [SERVICE], contracts={SERVICE: contract}
    )
    registration.start()
    try:
        yield registration
    finally:
        await registration.stop()


async def listed(registry: ConcordProcess, address: str) -> registry_pb2.ServiceInstance | None:
    return next((i for i in await instances(registry.address) if i.address == address), None)


async def test_the_platform_sends_its_image_when_asked_also_after_a_registry_restart(
    registry: ConcordProcess,
) -> None:
    ours = built()
    async with health_server(SERVICE) as server, registered(registry, server.address, ours):
        for restart in (True, False):
            instance = await eventually(
                lambda: listed(registry, server.address),
                lambda i: i is not None and i.health == registry_pb2.HEALTH_STATUS_SERVING,
                VERDICT_TIMEOUT_S,
                "registered with its contract",
            )
            assert instance is not None
            assert instance.contract_fingerprint == ours.fingerprint
            assert instance.contract_status == registry_pb2.CONTRACT_STATUS_COMPATIBLE
            assert instance.routable and instance.contract_version == 0
            if restart:  # its memory, images included, is gone: asked again, sent again
                registry.kill()
                registry.start()


async def test_resolve_says_instances_are_kept_out_for_their_contract(
    registry: ConcordProcess, stub: discovery_service_pb2_grpc.DiscoveryServiceStub
) -> None:
    async with grpc.aio.insecure_channel(registry.address) as channel:
        published = await contracts_service_pb2_grpc.ContractsServiceStub(channel).PublishContract(
            contracts_service_pb2.PublishContractRequest(
                label="built", descriptor_set=built().image
            ),
            timeout=60,
        )
    assert published.contract.version == 1
    async with health_server(SERVICE) as server, registered(registry, server.address, renumbered()):
        instance = await eventually(
            lambda: listed(registry, server.address),
            lambda i: (
                i is not None
                and i.contract_status == registry_pb2.CONTRACT_STATUS_INCOMPATIBLE
                and i.health == registry_pb2.HEALTH_STATUS_SERVING
            ),
            VERDICT_TIMEOUT_S,
            "judged incompatible",
        )
        assert instance is not None and not instance.routable
        assert any('"GetProductResponse"' in f for f in instance.exclusion_findings)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Resolve(discovery_service_pb2.ResolveRequest(service_name=SERVICE))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "1 registered: 1 kept out for their contract" in (caught.value.details() or "")
