"""The registry's state, chosen by CONCORD_REGISTRY_STATE: where instances and contracts live,
and what must run before the server listens and beside it.

`local_state`: the table in memory, contracts in the registry's SQLite file (one registry).
`shared_state`: both in JetStream key-value buckets at CONCORD_NATS_REPLICAS replicas, read
and written by every registry replica; opening connects to NATS (waiting for it, like every
service), binds or creates the buckets and loads both views whole.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from registry.contract_versions import ContractVersions, SqliteContractVersions
from registry.instance_store import InstanceStore, MemoryInstances
from registry.instances import InstanceTable
from registry.shared_contracts import JetStreamContractVersions
from registry.shared_instances import JetStreamInstances
from runtime.bus import Bus
from runtime.database import Database

Job = Callable[[], Awaitable[None]]


@dataclass
class RegistryState:
    instances: InstanceStore
    contracts: ContractVersions
    opening: list[Job] = field(default_factory=list)
    """Awaited before the server listens (ServiceParts.opening)."""
    background: list[Job] = field(default_factory=list)


def local_state(table: InstanceTable, db: Database) -> RegistryState:
    return RegistryState(MemoryInstances(table), SqliteContractVersions(db))


def shared_state(bus: Bus, table: InstanceTable, replicas: int) -> RegistryState:
    instances = JetStreamInstances(bus, table, replicas)
    contracts = JetStreamContractVersions(bus, replicas)

    async def open_shared() -> None:
        await bus.connect()
        await contracts.open()
        await instances.open()

    return RegistryState(
        instances, contracts, opening=[open_shared], background=[instances.run, contracts.run]
    )
