"""Where the instance table's changes go: this process's memory, or the shared bucket.

Every change (Register, Heartbeat, Deregister, a probe's outcome, a lapsed lease, a contract
verdict) goes through an `InstanceStore`; every read (Resolve, Watch, ListInstances, ADS, the
prober's list) goes to its `table`, the local view. `MemoryInstances` is today's single
registry (`CONCORD_REGISTRY_STATE=memory`); `shared_instances.JetStreamInstances` keeps the
table in a JetStream key-value bucket that every replica reads and writes.
"""

from __future__ import annotations

from typing import Protocol

from registry.instances import ContractStanding, HealthChange, Instance, InstanceTable, ProbeOutcome


class InstanceStore(Protocol):
    @property
    def table(self) -> InstanceTable:
        """The local view every read goes to."""
        ...

    async def register(
        self,
        service_name: str,
        address: str,
        version: str,
        metadata: dict[str, str],
        contract: ContractStanding | None = None,
    ) -> Instance: ...

    async def heartbeat(self, instance_id: str) -> Instance:
        """Renews the lease; NotFoundError when the instance is not (or no longer) known."""
        ...

    async def deregister(self, instance_id: str) -> Instance: ...

    async def set_contract(self, instance_id: str, standing: ContractStanding) -> bool:
        """True when the standing changed the instance."""
        ...

    async def record_probe(self, instance_id: str, outcome: ProbeOutcome) -> HealthChange | None:
        """The health change this probe caused, returned to exactly one caller among all
        replicas, so it is logged and counted once."""
        ...

    async def expire_leases(self) -> tuple[list[HealthChange], list[Instance]]:
        """Lapsed leases made NOT_SERVING and instances forgotten, each reported once."""
        ...


class MemoryInstances:
    """The table in this process's memory: the single registry of `make up`."""

    def __init__(self, table: InstanceTable) -> None:
        self._table = table

    @property
    def table(self) -> InstanceTable:
        return self._table

    async def register(
        self,
        service_name: str,
        address: str,
        version: str,
        metadata: dict[str, str],
        contract: ContractStanding | None = None,
    ) -> Instance:
        return self._table.register(service_name, address, version, metadata, contract)

    async def heartbeat(self, instance_id: str) -> Instance:
        return self._table.heartbeat(instance_id)

    async def deregister(self, instance_id: str) -> Instance:
        return self._table.deregister(instance_id)

    async def set_contract(self, instance_id: str, standing: ContractStanding) -> bool:
        return self._table.set_contract(instance_id, standing)

    async def record_probe(self, instance_id: str, outcome: ProbeOutcome) -> HealthChange | None:
        return self._table.record_probe(instance_id, outcome)

    async def expire_leases(self) -> tuple[list[HealthChange], list[Instance]]:
        return self._table.expire_leases()
