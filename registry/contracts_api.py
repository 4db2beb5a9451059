"""ContractsService over gRPC: publish only what breaks no channel of the latest version
(registry/compatibility.py judges gRPC, REST and events apart)."""

from __future__ import annotations

import asyncio
import hashlib

import grpc
from concord.registry.v1 import contracts_service_pb2, contracts_service_pb2_grpc, registry_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError

from registry.breaking import BreakingCheck
from registry.compatibility import compatibility
from registry.contract_diff import ChangeKind, diff_sources
from registry.contract_store import ContractVersion
from registry.contract_versions import ContractVersions
from registry.verdict import Channel, Verdict
from runtime.errors import AlreadyExistsError, FailedPreconditionError, NotFoundError
from runtime.ids import now, timestamp
from runtime.logs import get_logger
from runtime.validation import Violations

log = get_logger(__name__)

SERVICE_NAME = contracts_service_pb2.DESCRIPTOR.services_by_name["ContractsService"].full_name
MAX_LABEL_LEN = 128
BREAKING_CHANGE = "BREAKING_CHANGE"
_CHANNEL = {
    Channel.GRPC: contracts_service_pb2.CHANNEL_GRPC,
    Channel.REST: contracts_service_pb2.CHANNEL_REST,
    Channel.EVENTS: contracts_service_pb2.CHANNEL_EVENTS,
}
_KIND = {
    ChangeKind.ADDED: contracts_service_pb2.FileChange.KIND_ADDED,
    ChangeKind.REMOVED: contracts_service_pb2.FileChange.KIND_REMOVED,
    ChangeKind.MODIFIED: contracts_service_pb2.FileChange.KIND_MODIFIED,
}


def contract_pb(c: ContractVersion, whole: bool) -> registry_pb2.ContractVersion:
    message = registry_pb2.ContractVersion(
        version=c.version, label=c.label, publish_time=timestamp(c.publish_time), sha256=c.sha256
    )
    if whole:
        message.descriptor_set = c.descriptor_set
        message.sources.update(c.sources)
    return message


def check_descriptor_set(v: Violations, raw: bytes, field: str = "descriptor_set") -> set[str]:
    """Adds violations unless `raw` is a self-contained FileDescriptorSet; returns its files."""
    if not v.check(bool(raw), field, "is required"):
        return set()
    try:
        files = descriptor_pb2.FileDescriptorSet.FromString(raw).file
    except DecodeError:
        v.check(False, field, "is not a serialized google.protobuf.FileDescriptorSet")
        return set()
    names = {f.name for f in files}
    if not v.check(bool(names), field, "holds no file"):
        return names
    missing = sorted({dep for f in files for dep in f.dependency} - names)
    v.check(not missing, field, f"must include its imports; missing {', '.join(missing[:5])}")
    return names


def verdict_pb(verdict: Verdict) -> contracts_service_pb2.CheckCompatibilityResponse:
    return contracts_service_pb2.CheckCompatibilityResponse(
        compatible=verdict.compatible,
        violations=[str(f) for f in verdict.findings],
        channels=[
            contracts_service_pb2.ChannelVerdict(
                channel=_CHANNEL[c.channel],
                compatible=c.compatible,
                findings=[
                    contracts_service_pb2.Finding(
                        channel=_CHANNEL[f.channel],
                        file=f.file,
                        line=f.line,
                        rule=f.rule,
                        message=f.message,
                        consumers=f.consumers,
                    )
                    for f in c.findings
                ],
            )
            for c in verdict.channels
        ],
        broken_consumers=verdict.broken_consumers,
    )


class ContractsApi(contracts_service_pb2_grpc.ContractsServiceServicer):
    def __init__(self, versions: ContractVersions, breaking: BreakingCheck) -> None:
        self._versions = versions
        self._breaking = breaking
        self._publishing = asyncio.Lock()
        """One publication at a time per replica, so each is checked against the version it
        follows; between replicas the store refuses a version number taken meanwhile."""

    async def PublishContract(
        self,
        request: contracts_service_pb2.PublishContractRequest,
        context: grpc.aio.ServicerContext,
    ) -> contracts_service_pb2.PublishContractResponse:
        v = Violations()
        v.text(request.label, "label", max_len=MAX_LABEL_LEN)
        files = check_descriptor_set(v, request.descriptor_set)
        for path in sorted(request.sources):
            v.check(
                not files or path in files,
                f"sources[{path[:64]}]",
                "names no file of descriptor_set",
            )
        v.raise_if_any()
        async with self._publishing:
            if await self._versions.label_taken(request.label):
                raise AlreadyExistsError("contract version with label", request.label)
            latest = await self._versions.latest()
            if latest is not None:
                await self._refuse_if_breaking(request.descriptor_set, latest)
            sha256 = hashlib.sha256(request.descriptor_set).hexdigest()
            stored = await self._versions.append(
                request.label, now(), sha256, request.descriptor_set, dict(request.sources)
            )
        log.info("contract_published", version=stored.version, label=stored.label, sha256=sha256)
        return contracts_service_pb2.PublishContractResponse(
            contract=contract_pb(stored, whole=False)
        )

    async def _refuse_if_breaking(self, candidate: bytes, latest: ContractVersion) -> None:
        verdict = await compatibility(latest.descriptor_set, candidate, self._breaking)
        if not verdict.compatible:
            broken = [c.channel.value for c in verdict.channels if not c.compatible]
            log.info(
                "contract_refused",
                against_version=latest.version,
                channels=",".join(broken),
                findings=len(verdict.findings),
                broken_consumers=",".join(verdict.broken_consumers),
            )
            raise FailedPreconditionError(
                BREAKING_CHANGE,
                f"breaks version {latest.version} ({latest.label}) on {', '.join(broken)}:\n"
                + "\n".join(str(f) for f in verdict.findings),
                metadata={
                    "against_version": str(latest.version),
                    "channels": ",".join(broken),
                    "broken_consumers": ",".join(verdict.broken_consumers),
                },
            )

    async def GetContract(
        self, request: contracts_service_pb2.GetContractRequest, context: grpc.aio.ServicerContext
    ) -> contracts_service_pb2.GetContractResponse:
        v = Violations()
        v.check(request.version >= 0, "version", "must be 0 (latest) or a published version")
        v.raise_if_any()
        return contracts_service_pb2.GetContractResponse(
            contract=contract_pb(await self._version(request.version), whole=True)
        )

    async def _version(self, version: int) -> ContractVersion:
        if version == 0:
            found = await self._versions.latest()
        else:
            found = await self._versions.get(version)
        if found is None:
            raise NotFoundError("contract version", "latest" if version == 0 else str(version))
        return found

    async def ListContracts(
        self, request: contracts_service_pb2.ListContractsRequest, context: grpc.aio.ServicerContext
    ) -> contracts_service_pb2.ListContractsResponse:
        versions = await self._versions.summaries()
        return contracts_service_pb2.ListContractsResponse(
            contracts=[contract_pb(c, whole=False) for c in versions]
        )

    async def CheckCompatibility(
        self,
        request: contracts_service_pb2.CheckCompatibilityRequest,
        context: grpc.aio.ServicerContext,
    ) -> contracts_service_pb2.CheckCompatibilityResponse:
        v = Violations()
        check_descriptor_set(v, request.descriptor_set)
        v.raise_if_any()
        latest = await self._versions.latest()
        if latest is None:
            return verdict_pb(Verdict.clean())
        return verdict_pb(
            await compatibility(latest.descriptor_set, request.descriptor_set, self._breaking)
        )

    async def DiffContracts(
        self, request: contracts_service_pb2.DiffContractsRequest, context: grpc.aio.ServicerContext
    ) -> contracts_service_pb2.DiffContractsResponse:
        v = Violations()
        v.check(request.from_version > 0, "from_version", "must be a published version (1 or more)")
        v.check(request.to_version > 0, "to_version", "must be a published version (1 or more)")
        v.raise_if_any()
        old = await self._version(request.from_version)
        new = await self._version(request.to_version)
        changes = diff_sources(old.sources, new.sources, f"v{old.version}", f"v{new.version}")
        return contracts_service_pb2.DiffContractsResponse(
            changes=[
                contracts_service_pb2.FileChange(
                    path=c.path, kind=_KIND[c.kind], unified_diff=c.unified_diff
                )
                for c in changes
            ]
        )
