"""The instance table: who is registered, their leases and health, and which of them are live.

Plain Python with an injected clock, no grpc: the API, the prober and the xDS server all read
it on the event loop. With `CONCORD_REGISTRY_STATE=memory` it is the table itself (a restarted
registry learns every instance again from their next heartbeat, NOT_FOUND, Register); with
`jetstream` it is this replica's view of the shared table in a key-value bucket
(shared_instances.py), changed only through the bucket. The transitions (a probe's outcome, a
lapsed lease) are functions of one Instance, so both apply exactly the same rules. A live instance is SERVING by its last probe, holds an unexpired lease and is
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
    registered_at: float = 0.0
    """When it registered: of two entries for one service and address, the later wins."""

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


def probe_applied(
    instance: Instance, outcome: ProbeOutcome, failures_to_evict: int
) -> tuple[bool, HealthChange | None]:
    """Applies one probe's outcome to `instance` in place: (whether it changed at all, the
    health change if any). An explicit NOT_SERVING counts at once: the instance said so;
    silence counts only after `failures_to_evict` probes in a row."""
    if outcome is ProbeOutcome.FAILED:
        instance.failed_probes += 1
        if instance.failed_probes < failures_to_evict:
            return True, None
        return True, health_set(
            instance, Health.NOT_SERVING, f"{instance.failed_probes} probes failed in a row"
        )
    counted = instance.failed_probes != 0
    instance.failed_probes = 0
    if outcome is ProbeOutcome.SERVING:
        change = health_set(instance, Health.SERVING, "probe answered SERVING")
    else:
        change = health_set(instance, Health.NOT_SERVING, "probe answered NOT_SERVING")
    return counted or change is not None, change


def health_set(instance: Instance, health: Health, reason: str) -> HealthChange | None:
    before = instance.health
    if before is health:
        return None
    instance.health = health
    return HealthChange(instance, before, health, reason)


def forgettable(instance: Instance, now: float, forget_after_s: float) -> bool:
    """Lapsed for `forget_after_s`: listed no longer."""
    return not instance.leased(now) and now - instance.lease_expires_at >= forget_after_s


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
            registered_at=self.clock(),
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
        """Applies one probe's outcome (probe_applied)."""
        instance = self._instances.get(instance_id)
        if instance is None:
            return None  # deregistered while the probe was in flight
        _, change = probe_applied(instance, outcome, self.failures_to_evict)
        self._publish_if_live_set_changed()
        return change

    def expire_leases(self) -> tuple[list[HealthChange], list[Instance]]:
        """Marks lapsed leases NOT_SERVING and forgets instances lapsed for `forget_after_s`;
        returns the changes and the forgotten."""
        now = self.clock()
        changes: list[HealthChange] = []
        forgotten: list[Instance] = []
        for instance in self.all():
            if instance.leased(now):
                continue
            if forgettable(instance, now, self.forget_after_s):
                del self._instances[instance.instance_id]
                forgotten.append(instance)
                continue
            change = health_set(instance, Health.NOT_SERVING, "lease lapsed")
            if change is not None:
                changes.append(change)
        self._publish_if_live_set_changed()
        return changes, forgotten

    def put(self, instance: Instance) -> list[str]:
        """Takes an instance as the shared table holds it (a replica's view). Of two entries for
        one service and address the later registration wins; returns the ids it superseded
        (still in the shared table: the caller removes them there)."""
        rivals = [
            i
            for i in self._instances.values()
            if (i.service_name, i.address) == (instance.service_name, instance.address)
            and i.instance_id != instance.instance_id
        ]
        if any(r.registered_at > instance.registered_at for r in rivals):
            self._instances.pop(instance.instance_id, None)
            self._publish_if_live_set_changed()
            return [instance.instance_id]
        for rival in rivals:
            del self._instances[rival.instance_id]
        self._instances[instance.instance_id] = instance
        self._publish_if_live_set_changed()
        return [r.instance_id for r in rivals]

    def drop(self, instance_id: str) -> None:
        """Forgets an instance the shared table no longer holds."""
        if self._instances.pop(instance_id, None) is not None:
            self._publish_if_live_set_changed()

    def refresh_live_set(self) -> None:
        """Tells Watch and ADS streams when leases lapsed without any write (a replica's view:
        the lapse is written by whichever replica sweeps first)."""
        self._publish_if_live_set_changed()

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
