"""Where published contract versions are kept: the registry's SQLite file, or a shared bucket.

ContractsApi and the contract gate read and append versions through `ContractVersions`.
`SqliteContractVersions` is the single registry's store (contract_store.py, in
`.data/registry/`); `shared_contracts.JetStreamContractVersions` keeps them in a JetStream
key-value bucket every replica reads (`CONCORD_REGISTRY_STATE=jetstream`).
"""

from __future__ import annotations

from functools import partial
from typing import Protocol

from registry import contract_store
from registry.contract_store import ContractVersion
from runtime.database import Connection, Database


class ContractVersions(Protocol):
    async def latest(self) -> ContractVersion | None: ...

    async def get(self, version: int) -> ContractVersion | None: ...

    async def summaries(self) -> list[ContractVersion]:
        """Every version, newest first, without descriptor sets and sources."""
        ...

    async def label_taken(self, label: str) -> bool: ...

    async def append(
        self, label: str, at: float, sha256: str, descriptor_set: bytes, sources: dict[str, str]
    ) -> ContractVersion:
        """The next version. Raises AlreadyExistsError for a taken label and
        ConcurrencyConflictError when another replica appended that version first."""
        ...


class SqliteContractVersions:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def latest(self) -> ContractVersion | None:
        return await self._db.read(contract_store.latest)

    async def get(self, version: int) -> ContractVersion | None:
        return await self._db.read(partial(contract_store.get, version=version))

    async def summaries(self) -> list[ContractVersion]:
        return await self._db.read(contract_store.summaries)

    async def label_taken(self, label: str) -> bool:
        return await self._db.read(partial(contract_store.label_taken, label=label))

    async def append(
        self, label: str, at: float, sha256: str, descriptor_set: bytes, sources: dict[str, str]
    ) -> ContractVersion:
        def append(conn: Connection) -> ContractVersion:
            return contract_store.append(conn, label, at, sha256, descriptor_set, sources)

        return await self._db.write(append)
