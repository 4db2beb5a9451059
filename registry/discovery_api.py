"""DiscoveryService over gRPC: validate, change or read the instance table, translate."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
from concord.registry.v1 import discovery_service_pb2, discovery_service_pb2_grpc, registry_pb2
from google.protobuf.duration_pb2 import Duration
from grpc_status import rpc_status

from registry.contract_gate import ContractGate
from registry.feed import FeedClosedError
from registry.instance_store import InstanceStore
from registry.instances import ContractStatus, Health, Instance
from registry.prober import Prober
from runtime.errors import DependencyUnavailableError, DomainError
from runtime.grpc_errors import to_status
from runtime.ids import timestamp
from runtime.logs import get_logger
from runtime.validation import Violations

log = get_logger(__name__)

SERVICE_NAME = discovery_service_pb2.DESCRIPTOR.services_by_name["DiscoveryService"].full_name
MAX_NAME_LEN = 200
MAX_METADATA_ENTRIES = 32
FINGERPRINT_HEX_LEN = 64
REGISTRY_WARMING_UP = "REGISTRY_WARMING_UP"
"""ErrorInfo reason of a Resolve that finds no live instance during the warm-up after a start:
not an answer to trust, unlike DEPENDENCY_UNAVAILABLE (runtime/discovery.py)."""
_HEALTH = {
    Health.UNKNOWN: registry_pb2.HEALTH_STATUS_UNSPECIFIED,
    Health.SERVING: registry_pb2.HEALTH_STATUS_SERVING,
    Health.NOT_SERVING: registry_pb2.HEALTH_STATUS_NOT_SERVING,
}
_CONTRACT = {
    ContractStatus.UNCHECKED: registry_pb2.CONTRACT_STATUS_UNSPECIFIED,
    ContractStatus.PENDING: registry_pb2.CONTRACT_STATUS_PENDING,
    ContractStatus.PUBLISHED: registry_pb2.CONTRACT_STATUS_PUBLISHED,
    ContractStatus.COMPATIBLE: registry_pb2.CONTRACT_STATUS_COMPATIBLE,
    ContractStatus.INCOMPATIBLE: registry_pb2.CONTRACT_STATUS_INCOMPATIBLE,
    ContractStatus.CHECK_FAILED: registry_pb2.CONTRACT_STATUS_CHECK_FAILED,
}


def instance_pb(i: Instance) -> registry_pb2.ServiceInstance:
    return registry_pb2.ServiceInstance(
        instance_id=i.instance_id,
        service_name=i.service_name,
        address=i.address,
        version=i.version,
        metadata=i.metadata,
        health=_HEALTH[i.health],
        lease_expire_time=timestamp(i.lease_expires_at),
        contract_fingerprint=i.contract.fingerprint,
        contract_version=i.contract.version,
        contract_status=_CONTRACT[i.contract.status],
        routable=i.contract.routable,
        exclusion_reason=i.contract.reason,
        exclusion_findings=i.contract.findings,
    )


def _check_fingerprint(v: Violations, fingerprint: str) -> None:
    if not fingerprint:
        return
    prefix, _, digest = fingerprint.partition(":")
    v.check(
        prefix == "sha256"
        and len(digest) == FINGERPRINT_HEX_LEN
        and all(c in "0123456789abcdef" for c in digest),
        "contract_fingerprint",
        f"must be sha256:<64 lowercase hex digits>, got {fingerprint[:80]!r}",
    )


def _check_address(v: Violations, address: str) -> None:
    host, sep, port = address.rpartition(":")
    ok = bool(sep and host and port.isdigit() and 0 < int(port) < 65536)
    v.check(ok, "address", f"must be host:port with a port from 1 to 65535, got {address[:64]!r}")


def _check_service_name(v: Violations, name: str) -> None:
    if v.text(name, "service_name", max_len=MAX_NAME_LEN):
        v.check(
            "." in name and " " not in name,
            "service_name",
            f"must be a full gRPC service name such as shop.orders.v1.OrdersService, got {name!r}",
        )


def _require_instance_id(instance_id: str) -> None:
    v = Violations()
    v.text(instance_id, "instance_id", max_len=64)
    v.raise_if_any()


class DiscoveryApi(discovery_service_pb2_grpc.DiscoveryServiceServicer):
    def __init__(
        self,
        instances: InstanceStore,
        prober: Prober,
        gate: ContractGate,
        lease_ttl_s: float,
        warmup_s: float = 0.0,
    ) -> None:
        self._instances = instances
        self._table = instances.table
        self._prober = prober
        self._gate = gate
        self._lease_ttl_s = lease_ttl_s
        self._warmup_s = warmup_s
        self._started_at = time.monotonic()

    async def Register(
        self, request: discovery_service_pb2.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> discovery_service_pb2.RegisterResponse:
        v = Violations()
        _check_service_name(v, request.service_name)
        _check_address(v, request.address)
        v.text(request.version, "version", min_len=0, max_len=MAX_NAME_LEN)
        v.check(
            len(request.metadata) <= MAX_METADATA_ENTRIES,
            "metadata",
            f"at most {MAX_METADATA_ENTRIES} entries",
        )
        _check_fingerprint(v, request.contract_fingerprint)
        v.check(
            not request.contract_image or bool(request.contract_fingerprint),
            "contract_image",
            "is sent only with the contract_fingerprint it stands for",
        )
        v.raise_if_any()
        contract = await self._gate.admit(
            request.service_name, request.contract_fingerprint, request.contract_image
        )
        instance = await self._instances.register(
            request.service_name,
            request.address,
            request.version,
            dict(request.metadata),
            contract,
        )
        log.info(
            "instance_registered",
            instance_id=instance.instance_id,
            service_name=instance.service_name,
            address=instance.address,
            version=instance.version,
            contract_fingerprint=contract.fingerprint,
            contract_version=contract.version,
            contract_status=contract.status.value,
        )
        self._prober.probe_soon()
        ttl = Duration()
        ttl.FromMilliseconds(int(self._lease_ttl_s * 1000))
        return discovery_service_pb2.RegisterResponse(instance=instance_pb(instance), lease_ttl=ttl)

    async def Heartbeat(
        self, request: discovery_service_pb2.HeartbeatRequest, context: grpc.aio.ServicerContext
    ) -> discovery_service_pb2.HeartbeatResponse:
        _require_instance_id(request.instance_id)
        return discovery_service_pb2.HeartbeatResponse(
            instance=instance_pb(await self._instances.heartbeat(request.instance_id))
        )

    async def Deregister(
        self, request: discovery_service_pb2.DeregisterRequest, context: grpc.aio.ServicerContext
    ) -> discovery_service_pb2.DeregisterResponse:
        _require_instance_id(request.instance_id)
        instance = await self._instances.deregister(request.instance_id)
        log.info(
            "instance_deregistered",
            instance_id=instance.instance_id,
            service_name=instance.service_name,
            address=instance.address,
        )
        return discovery_service_pb2.DeregisterResponse()

    async def Resolve(
        self, request: discovery_service_pb2.ResolveRequest, context: grpc.aio.ServicerContext
    ) -> discovery_service_pb2.ResolveResponse:
        v = Violations()
        _check_service_name(v, request.service_name)
        v.raise_if_any()
        live = self._table.live(request.service_name)
        up_s = time.monotonic() - self._started_at
        if not live and up_s < self._warmup_s:
            raise DependencyUnavailableError(
                request.service_name,
                f"no live instance of {request.service_name} yet: the registry started "
                f"{up_s:.1f}s ago and instances are still registering again "
                f"(warm-up {self._warmup_s:g}s); keep the addresses you had",
                reason=REGISTRY_WARMING_UP,
            )
        if not live:
            known = [i for i in self._table.all() if i.service_name == request.service_name]
            excluded = sum(1 for i in known if not i.contract.routable)
            raise DependencyUnavailableError(
                request.service_name,
                f"no live instance of {request.service_name} ({len(known)} registered: "
                f"{excluded} kept out for their contract, the others not SERVING with a "
                "current lease; ListInstances says why)",
            )
        return discovery_service_pb2.ResolveResponse(instances=[instance_pb(i) for i in live])

    async def ListInstances(
        self, request: discovery_service_pb2.ListInstancesRequest, context: grpc.aio.ServicerContext
    ) -> discovery_service_pb2.ListInstancesResponse:
        return discovery_service_pb2.ListInstancesResponse(
            instances=[instance_pb(i) for i in self._table.all()]
        )

    async def Watch(
        self, request: discovery_service_pb2.WatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[discovery_service_pb2.WatchResponse]:
        """The current live set first, then the whole set again after each change; ends when
        the registry drains (the client watches again, elsewhere or later)."""
        try:
            v = Violations()
            _check_service_name(v, request.service_name)
            v.raise_if_any()
        except DomainError as error:
            # Streaming handlers are not wrapped by DomainErrorInterceptor (unary only).
            await context.abort_with_status(rpc_status.to_status(to_status(error)))
        seen = -1
        sent: list[tuple[str, str]] | None = None
        while True:
            try:
                seen = await self._table.feed.wait_past(seen)
            except FeedClosedError:
                return
            live = self._table.live(request.service_name)
            signature = [(i.instance_id, i.address) for i in live]
            if signature != sent:
                sent = signature
                yield discovery_service_pb2.WatchResponse(instances=[instance_pb(i) for i in live])
