"""The instance table: who is registered, their leases and health, and which of them are live.

Plain Python with an injected clock, no grpc: the API, the prober and the xDS server all read
and change it on the event loop. It lives in memory on purpose: after a registry restart every
instance's next heartbeat gets NOT_FOUND and registers again, so persisting it would only keep
stale addresses. A live instance is SERVING by its last probe, holds an unexpired lease and is
routable: its contract does not break the latest published version (contract_gate.py decides,
the table only keeps the standing it is given).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from registry.feed import ChangeFeed
from runtime.errors import NotFoundError
from runtime.ids import new_id


class Health(enum.Enum):
    UNKNOWN = "UNKNOWN"
    SERVING = "SERVING"
    NOT_SERVING = "NOT_SERVING"


class ProbeOutcome(enum.Enum):
    SERVING = "SERVING"
    NOT_SERVING = "NOT_SERVING"
    """The instance answered and said it does not serve (draining, dependency down)."""
    FAILED = "FAILED"
    """No answer: refused, timed out, or an error."""


class ContractStatus(enum.Enum):
    UNCHECKED = "UNCHECKED"
    """The instance reported no contract fingerprint."""
    PENDING = "PENDING"
    """buf has not answered yet: kept out until it does."""
    PUBLISHED = "PUBLISHED"
    COMPATIBLE = "COMPATIBLE"
    """Unpublished, but breaks nothing of the latest published version."""
    INCOMPATIBLE = "INCOMPATIBLE"
    CHECK_FAILED = "CHECK_FAILED"


ROUTABLE = frozenset(
    {ContractStatus.UNCHECKED, ContractStatus.PUBLISHED, ContractStatus.COMPATIBLE}
)


@dataclass(frozen=True)
class ContractStanding:
    """Where an instance's contract stands against the latest published version."""

    fingerprint: str = ""
    status: ContractStatus = ContractStatus.UNCHECKED
    version: int = 0
    """The published version with the same fingerprint for the service; 0 when none."""
    reason: str = ""
    """Why it is not routable; empty when it is."""
    findings: tuple[str, ...] = ()

    @property
    def routable(self) -> bool:
        return self.status in ROUTABLE


@dataclass
class Instance:
    instance_id: str
    service_name: str
    address: str
    version: str
    metadata: dict[str, str]
    lease_expires_at: float
    health: Health = Health.UNKNOWN
    failed_probes: int = 0
    contract: ContractStanding = field(default_factory=ContractStanding)

    def leased(self, now: float) -> bool:
        return self.lease_expires_at > now

    def live(self, now: float) -> bool:
        return self.health is Health.SERVING and self.leased(now) and self.contract.routable


@dataclass(frozen=True)
class HealthChange:
    instance: Instance
    before: Health
    after: Health
    reason: str


@dataclass
class InstanceTable:
    lease_ttl_s: float
    failures_to_evict: int
    forget_after_s: float
    clock: Callable[[], float] = time.time
    feed: ChangeFeed = field(default_factory=ChangeFeed)
    """Bumped whenever the live set of any service changes."""
    _instances: dict[str, Instance] = field(default_factory=dict)
    _live_signature: frozenset[tuple[str, str, str]] = frozenset()

    def register(
        self,
        service_name: str,
        address: str,
        version: str,
        metadata: dict[str, str],
        contract: ContractStanding | None = None,
    ) -> Instance:
        """Adds an instance; one already registered for the same service and address (a
        restarted process) is replaced."""
        for old in [
            i
            for i in self._instances.values()
            if (i.service_name, i.address) == (service_name, address)
        ]:
            del self._instances[old.instance_id]
        instance = Instance(
            instance_id=new_id("ins"),
            service_name=service_name,
            address=address,
            version=version,
            metadata=dict(metadata),
            lease_expires_at=self.clock() + self.lease_ttl_s,
            contract=contract or ContractStanding(),
        )
        self._instances[instance.instance_id] = instance
        self._publish_if_live_set_changed()
        return instance

    def heartbeat(self, instance_id: str) -> Instance:
        instance = self.get(instance_id)
        instance.lease_expires_at = self.clock() + self.lease_ttl_s
        self._publish_if_live_set_changed()
        return instance

    def deregister(self, instance_id: str) -> Instance:
        instance = self.get(instance_id)
        del self._instances[instance_id]
        self._publish_if_live_set_changed()
        return instance

    def get(self, instance_id: str) -> Instance:
        instance = self._instances.get(instance_id)
        if instance is None:
            raise NotFoundError("instance", instance_id)
        return instance

    def all(self) -> list[Instance]:
        return sorted(self._instances.values(), key=lambda i: (i.service_name, i.address))

    def live(self, service_name: str) -> list[Instance]:
        now = self.clock()
        return [i for i in self.all() if i.service_name == service_name and i.live(now)]

    def set_contract(self, instance_id: str, standing: ContractStanding) -> bool:
        """Gives an instance its contract's standing; True when that changed it."""
        instance = self._instances.get(instance_id)
        if instance is None or instance.contract == standing:
            return False
        instance.contract = standing
        self._publish_if_live_set_changed()
        return True

    def to_probe(self, only_unprobed: bool = False) -> list[Instance]:
        """Leased instances; a lapsed lease can only come back through a heartbeat."""
        now = self.clock()
        return [
            i
            for i in self.all()
            if i.leased(now) and (not only_unprobed or i.health is Health.UNKNOWN)
        ]

    def record_probe(self, instance_id: str, outcome: ProbeOutcome) -> HealthChange | None:
        """Applies one probe's outcome. An explicit NOT_SERVING counts at once: the instance
        said so; silence counts only after `failures_to_evict` probes in a row."""
        instance = self._instances.get(instance_id)
        if instance is None:
            return None  # deregistered while the probe was in flight
        if outcome is ProbeOutcome.FAILED:
            instance.failed_probes += 1
            if instance.failed_probes < self.failures_to_evict:
                return None
            return self._set_health(
                instance, Health.NOT_SERVING, f"{instance.failed_probes} probes failed in a row"
            )
        instance.failed_probes = 0
        if outcome is ProbeOutcome.SERVING:
            return self._set_health(instance, Health.SERVING, "probe answered SERVING")
        return self._set_health(instance, Health.NOT_SERVING, "probe answered NOT_SERVING")

    def expire_leases(self) -> tuple[list[HealthChange], list[Instance]]:
        """Marks lapsed leases NOT_SERVING and forgets instances lapsed for `forget_after_s`;
        returns the changes and the forgotten."""
        now = self.clock()
        changes: list[HealthChange] = []
        forgotten: list[Instance] = []
        for instance in self.all():
            if instance.leased(now):
                continue
            if now - instance.lease_expires_at >= self.forget_after_s:
                del self._instances[instance.instance_id]
                forgotten.append(instance)
                continue
            change = self._set_health(instance, Health.NOT_SERVING, "lease lapsed")
            if change is not None:
                changes.append(change)
        self._publish_if_live_set_changed()
        return changes, forgotten

    def _set_health(self, instance: Instance, health: Health, reason: str) -> HealthChange | None:
        before = instance.health
        if before is health:
            return None
        instance.health = health
        self._publish_if_live_set_changed()
        return HealthChange(instance, before, health, reason)

    def _publish_if_live_set_changed(self) -> None:
        now = self.clock()
        signature = frozenset(
            (i.service_name, i.instance_id, i.address)
            for i in self._instances.values()
            if i.live(now)
        )
        if signature != self._live_signature:
            self._live_signature = signature
            self.feed.publish()
