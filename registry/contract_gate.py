"""Keeps instances whose contract breaks the latest published version out of traffic.

Each Register may carry the fingerprint of the contract the instance was built from
(runtime/contract_fingerprint.py). The gate maps it to a published version (the same digest
computed over the same files of each published image) and decides whether the instance is
routable:

- nothing of the service published yet, or the fingerprint is the latest version's: routable
  at once, no buf run;
- otherwise the registry's breaking check (`FindingsOf`: buf, registry/breaking.py) runs on
  the instance's image against the latest version's image, both cut down to the file
  declaring the service and its imports.
  No findings: routable (an unpublished compatible addition, or an older compatible version).
  Findings: excluded from Resolve, Watch and Envoy, with the findings in ListInstances.

buf is a subprocess, so checks run in the gate's own background task, one at a time, never in
the Register call: the instance is registered at once as PENDING (not routable) and becomes
routable or excluded when the verdict lands. Verdicts are cached per (service, fingerprint,
latest version); a timeout is not a verdict and is retried every refresh. The image is needed
only for a fingerprint the registry does not know: Register without it answers
FAILED_PRECONDITION / CONTRACT_IMAGE_REQUIRED and the instance registers again with it. The
latest version is re-read every `contract_refresh_s`; when it moves every instance is judged
again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from google.protobuf import descriptor_pb2

from registry.contract_versions import ContractVersions
from registry.instance_store import InstanceStore
from registry.instances import ContractStanding, ContractStatus
from runtime import contract_fingerprint
from runtime.contract_fingerprint import ContractImageError
from runtime.errors import (
    DependencyUnavailableError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
)
from runtime.logs import get_logger

log = get_logger(__name__)

CONTRACT_IMAGE_REQUIRED = "CONTRACT_IMAGE_REQUIRED"
"""ErrorInfo reason of a Register whose fingerprint the registry does not know, sent without
its image: register again with contract_image."""

EXCLUDED = frozenset({ContractStatus.INCOMPATIBLE, ContractStatus.CHECK_FAILED})
"""Standings that keep an instance out for good (PENDING only until buf answers)."""

Key = tuple[str, str]
"""(service name, fingerprint)."""

FindingsOf = Callable[[bytes, bytes], Awaitable[Sequence[str]]]
"""The registry's compatibility check, (candidate image, published image) -> findings, one a
line; empty when compatible. Today registry.compatibility judged on every channel; whatever
judges publications is what judges instances, so there is one place to change it."""


@dataclass(frozen=True)
class PublishedImage:
    version: int
    files: dict[str, descriptor_pb2.FileDescriptorProto]
    fingerprints: dict[str, str]
    """Full service name -> its fingerprint in this version."""

    @classmethod
    def parse(cls, version: int, raw: bytes) -> PublishedImage:
        files = contract_fingerprint.files_of_image(raw)
        names = {
            f"{f.package}.{s.name}" if f.package else s.name
            for f in files.values()
            for s in f.service
        }
        fingerprints = {}
        for name in names:
            with contextlib.suppress(ContractImageError):  # an import missing: not comparable
                fingerprints[name] = contract_fingerprint.service_contract(files, name).fingerprint
        return cls(version, files, fingerprints)

    def image_of(self, service_name: str) -> bytes:
        return contract_fingerprint.service_contract(self.files, service_name).image


class ContractGate:
    def __init__(
        self,
        versions: ContractVersions,
        findings_of: FindingsOf,
        instances: InstanceStore,
        refresh_interval_s: float,
        images_max: int,
        only_replica: bool = True,
    ) -> None:
        self._versions = versions
        self._findings_of = findings_of
        self._instances = instances
        self._refresh_interval_s = refresh_interval_s
        self._images_max = images_max
        self._only_replica = only_replica
        """False when replicas share the table (instances registered through another replica
        may have sent their image there)."""
        self._published: dict[int, PublishedImage] = {}
        self._latest = 0
        self._images: OrderedDict[str, bytes] = OrderedDict()
        """Fingerprint -> the image an instance sent, newest use last, at most images_max."""
        self._verdicts: dict[tuple[str, str, int], ContractStanding] = {}
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._retry: set[Key] = set()
        """Checks that could not run (buf timed out): tried again each refresh."""

    async def admit(self, service_name: str, fingerprint: str, image: bytes) -> ContractStanding:
        """The standing of a registering instance; raises when the image is needed or bad."""
        if not fingerprint:
            return ContractStanding()
        await self.refresh()
        if image:
            self._keep_image(service_name, fingerprint, image)
        elif fingerprint not in self._images and self._version_of(service_name, fingerprint) == 0:
            raise FailedPreconditionError(
                CONTRACT_IMAGE_REQUIRED,
                f"contract {fingerprint} of {service_name} is unknown to the registry: "
                "register again with contract_image",
            )
        if fingerprint in self._images:
            self._images.move_to_end(fingerprint)
        return self.standing(service_name, fingerprint)

    def _keep_image(self, service_name: str, fingerprint: str, image: bytes) -> None:
        try:
            files = contract_fingerprint.files_of_image(image)
            contract = contract_fingerprint.service_contract(files, service_name)
        except ContractImageError as error:
            raise InvalidArgumentError([FieldViolation("contract_image", str(error))]) from error
        if contract.fingerprint != fingerprint:
            raise InvalidArgumentError(
                [
                    FieldViolation(
                        "contract_image",
                        f"its fingerprint for {service_name} is {contract.fingerprint}, "
                        f"not contract_fingerprint {fingerprint}",
                    )
                ]
            )
        self._images[fingerprint] = contract.image
        while len(self._images) > self._images_max:
            self._images.popitem(last=False)

    def standing(self, service_name: str, fingerprint: str) -> ContractStanding:
        """What is known now; enqueues a buf check when nothing is."""
        version = self._version_of(service_name, fingerprint)
        latest = self._published.get(self._latest)
        if latest is None or service_name not in latest.fingerprints:
            return ContractStanding(fingerprint, _unbroken(version), version)
        if latest.fingerprints[service_name] == fingerprint:
            return ContractStanding(fingerprint, ContractStatus.PUBLISHED, latest.version)
        verdict = self._verdicts.get((service_name, fingerprint, latest.version))
        if verdict is not None:
            return verdict
        self._enqueue((service_name, fingerprint))
        return ContractStanding(
            fingerprint,
            ContractStatus.PENDING,
            version,
            f"contract check against published v{latest.version} not finished",
        )

    def _version_of(self, service_name: str, fingerprint: str) -> int:
        """The newest published version with this fingerprint for the service; 0 if none."""
        for version in sorted(self._published, reverse=True):
            if self._published[version].fingerprints.get(service_name) == fingerprint:
                return version
        return 0

    def _enqueue(self, key: Key) -> None:
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    async def refresh(self) -> None:
        """Reads versions published since the last look (Register and the loop both call it)."""
        summaries = await self._versions.summaries()
        new = [s.version for s in summaries if s.version not in self._published]
        for version in sorted(new):
            stored = await self._versions.get(version)
            if stored is not None:
                self._published[version] = await asyncio.to_thread(
                    PublishedImage.parse, version, stored.descriptor_set
                )
        self._latest = max(self._published, default=0)

    async def run(self) -> None:
        """Refreshes the latest version and runs queued checks until cancelled."""
        checks = asyncio.create_task(self._check_forever(), name="contract-checks")
        judged_against = 0
        try:
            while True:
                try:
                    await self.refresh()
                except Exception as error:  # the store may be busy: try next round
                    log.warning("contract_refresh_failed", error=repr(error))
                if self._latest != judged_against:  # a Register may have seen it first
                    judged_against = self._latest
                    log.info("contract_latest_changed", version=self._latest)
                    self._verdicts = {
                        k: v for k, v in self._verdicts.items() if k[2] == self._latest
                    }
                    await self._judge_all()
                for key in list(self._retry):
                    self._retry.discard(key)
                    self._enqueue(key)
                await asyncio.sleep(self._refresh_interval_s)
        finally:
            checks.cancel()
            await asyncio.gather(checks, return_exceptions=True)

    def _can_judge(self, service_name: str, fingerprint: str) -> bool:
        """Whether this replica holds the instance's image. Replicas share the table but not
        the images: one sent to another replica is judged there."""
        return (
            self._only_replica
            or fingerprint in self._images
            or self._version_of(service_name, fingerprint) > 0
        )

    async def _judge_all(self) -> None:
        for instance in self._instances.table.all():
            fingerprint = instance.contract.fingerprint
            if fingerprint and self._can_judge(instance.service_name, fingerprint):
                standing = self.standing(instance.service_name, fingerprint)
                await self._set(instance.instance_id, standing)

    async def _check_forever(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            try:
                await self._check(*key)
            except Exception as error:  # keep checking the others; say why this one failed
                log.error("contract_check_failed", exc_info=True, error=repr(error))

    async def _check(self, service_name: str, fingerprint: str) -> None:
        latest = self._published.get(self._latest)
        if latest is None:
            return
        key = (service_name, fingerprint, latest.version)
        if key in self._verdicts:
            return await self._apply(service_name, fingerprint)
        version = self._version_of(service_name, fingerprint)
        candidate = (
            self._published[version].image_of(service_name)
            if version
            else self._images.get(fingerprint)
        )
        if candidate is None and not self._only_replica:
            return  # sent to another replica, which judges it
        if candidate is None:  # evicted: the instance sends it again on its next Register
            return await self._apply(service_name, fingerprint, self._failed(key, "image not held"))
        against = latest.image_of(service_name)
        try:
            findings = list(await self._findings_of(candidate, against))
        except DependencyUnavailableError as error:
            self._retry.add((service_name, fingerprint))
            return await self._apply(service_name, fingerprint, self._failed(key, str(error)))
        except InvalidArgumentError as error:
            verdict = self._failed(key, f"buf could not read the image: {error}")
        else:
            status = ContractStatus.INCOMPATIBLE if findings else _unbroken(version)
            reason = (
                f"contract breaks published v{latest.version} of {service_name} "
                f"({len(findings)} finding(s))"
                if findings
                else ""
            )
            verdict = ContractStanding(fingerprint, status, version, reason, tuple(findings))
        self._verdicts[key] = verdict
        log.info(
            "contract_checked",
            service_name=service_name,
            fingerprint=fingerprint,
            against_version=latest.version,
            status=verdict.status.value,
            findings=len(verdict.findings),
        )
        await self._apply(service_name, fingerprint)

    def _failed(self, key: tuple[str, str, int], why: str) -> ContractStanding:
        service_name, fingerprint, against = key
        return ContractStanding(
            fingerprint,
            ContractStatus.CHECK_FAILED,
            self._version_of(service_name, fingerprint),
            f"contract check against published v{against} failed: {why}",
        )

    async def _apply(
        self, service_name: str, fingerprint: str, standing: ContractStanding | None = None
    ) -> None:
        for instance in self._instances.table.all():
            if (instance.service_name, instance.contract.fingerprint) == (
                service_name,
                fingerprint,
            ):
                await self._set(
                    instance.instance_id, standing or self.standing(service_name, fingerprint)
                )

    async def _set(self, instance_id: str, standing: ContractStanding) -> None:
        changed = await self._instances.set_contract(instance_id, standing)
        if changed and standing.status in EXCLUDED:
            instance = self._instances.table.get(instance_id)
            log.warning(
                "instance_excluded_for_contract",
                instance_id=instance_id,
                service_name=instance.service_name,
                address=instance.address,
                status=standing.status.value,
                reason=standing.reason,
            )


def _unbroken(version: int) -> ContractStatus:
    """The status of a contract that breaks nothing: published as `version`, or not (0)."""
    return ContractStatus.PUBLISHED if version else ContractStatus.COMPATIBLE
