"""Published contract versions in a JetStream key-value bucket shared by the registry replicas.

Keys `v.<version>` hold a version whole (JSON, the descriptor set in base64); keys
`label.<sha256 of the label>` reserve a label. A version never changes once written, so each
replica reads from its view (kept current by a watch, kv_bucket.py). Appending is two `create`s,
which fail when the key exists: the label first (taken: ALREADY_EXISTS), then the version
number after the latest this replica knows (taken: another replica published first, so the
label is released and the caller gets ABORTED and publishes again, checked against the new
latest). Each value must fit in one NATS message (1 MiB by default).
"""

from __future__ import annotations

import base64
import hashlib
import json

from nats.js.api import KeyValueConfig, StorageType

from registry.contract_store import ContractVersion
from registry.kv_bucket import WatchedBucket, lost_race
from runtime.bus import Bus
from runtime.errors import AlreadyExistsError, ConcurrencyConflictError
from runtime.logs import get_logger

log = get_logger(__name__)

BUCKET = "concord_registry_contracts"
VERSION_PREFIX = "v."
LABEL_PREFIX = "label."


def _encode(c: ContractVersion) -> bytes:
    return json.dumps(
        {
            "version": c.version,
            "label": c.label,
            "publish_time": c.publish_time,
            "sha256": c.sha256,
            "descriptor_set": base64.b64encode(c.descriptor_set).decode(),
            "sources": c.sources,
        },
        sort_keys=True,
    ).encode()


def _decode(value: bytes) -> ContractVersion:
    raw = json.loads(value)
    return ContractVersion(
        version=raw["version"],
        label=raw["label"],
        publish_time=raw["publish_time"],
        sha256=raw["sha256"],
        descriptor_set=base64.b64decode(raw["descriptor_set"]),
        sources=dict(raw["sources"]),
    )


def _label_key(label: str) -> str:
    return LABEL_PREFIX + hashlib.sha256(label.encode()).hexdigest()


class JetStreamContractVersions:
    """`ContractVersions` over the shared bucket; `open()` before serving, `run` in background."""

    def __init__(self, bus: Bus, replicas: int) -> None:
        self._versions: dict[int, ContractVersion] = {}
        self._bucket = WatchedBucket(
            bus,
            KeyValueConfig(
                bucket=BUCKET,
                description="Concord registry: published contract versions",
                history=1,
                storage=StorageType.FILE,
                replicas=replicas,
            ),
            self._on_put,
            self._on_delete,
        )

    async def open(self) -> None:
        await self._bucket.open()
        log.info("shared_contracts_loaded", bucket=BUCKET, versions=len(self._versions))

    async def run(self) -> None:
        await self._bucket.run()

    def _on_put(self, key: str, value: bytes, revision: int) -> None:
        if key.startswith(VERSION_PREFIX):
            version = _decode(value)
            self._versions[version.version] = version

    def _on_delete(self, key: str) -> None:
        if key.startswith(VERSION_PREFIX):
            self._versions.pop(int(key.removeprefix(VERSION_PREFIX)), None)

    async def latest(self) -> ContractVersion | None:
        return self._versions[max(self._versions)] if self._versions else None

    async def get(self, version: int) -> ContractVersion | None:
        return self._versions.get(version)

    async def summaries(self) -> list[ContractVersion]:
        return [
            ContractVersion(c.version, c.label, c.publish_time, c.sha256, b"", {})
            for c in sorted(self._versions.values(), key=lambda c: -c.version)
        ]

    async def label_taken(self, label: str) -> bool:
        return any(c.label == label for c in self._versions.values())

    async def append(
        self, label: str, at: float, sha256: str, descriptor_set: bytes, sources: dict[str, str]
    ) -> ContractVersion:
        kv = self._bucket.kv
        version = max(self._versions, default=0) + 1
        try:
            await kv.create(_label_key(label), str(version).encode())
        except Exception as error:
            if lost_race(error):
                raise AlreadyExistsError("contract version with label", label) from error
            raise
        stored = ContractVersion(version, label, at, sha256, descriptor_set, dict(sources))
        try:
            await kv.create(f"{VERSION_PREFIX}{version}", _encode(stored))
        except Exception as error:
            await kv.delete(_label_key(label))
            if lost_race(error):
                raise ConcurrencyConflictError(
                    "contract versions", version - 1, max(self._versions, default=0)
                ) from error
            raise
        self._versions[version] = stored
        return stored
