"""The instance table in a JetStream key-value bucket, shared by every registry replica.

One key per instance (its id), the value the instance as JSON. Each replica keeps a view
(an InstanceTable) current through a watch (kv_bucket.py), so Resolve, Watch and ADS on any
replica follow changes made through any other. What must be atomic is a read-modify-write of
one instance (renew a lease, count a failed probe, mark it NOT_SERVING, give it a contract
verdict, forget it): each is `update(key, value, last=revision)` (or `delete(key, last=...)`)
against the revision it read, retried on a conflict from a fresh read. So when two replicas
see the same dead instance, one write wins and only its caller reports the change: the
instance is dropped, logged and counted once. A registration is a `create` of a new key; an
older entry for the same service and address is deleted by whichever replica sees both (the
view already hides it, so all replicas agree at once).

The bucket's TTL (`lease_ttl_s + forget_after_s`) forgets an instance nobody wrote for that
long even when no replica is left to sweep it: the purge marker reaches every view.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any, TypeVar

from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyNotFoundError

from registry.instances import (
    ContractStanding,
    ContractStatus,
    Health,
    HealthChange,
    Instance,
    InstanceTable,
    ProbeOutcome,
    forgettable,
    health_set,
    probe_applied,
)
from registry.kv_bucket import WatchedBucket, lost_race
from runtime.bus import Bus
from runtime.errors import NotFoundError
from runtime.ids import new_id
from runtime.logs import get_logger

log = get_logger(__name__)

BUCKET = "concord_registry_instances"
ATTEMPTS = 16
"""Revision-checked writes tried this often before giving up (each after a fresh read)."""
RACE_BACKOFF_S = 0.01
"""Up to this long (random, growing per attempt) before retrying a write that lost a race."""

T = TypeVar("T")
Change = Callable[[Instance], tuple[bool, T]]
"""Changes an instance in place: (whether to write it, what to return)."""


def encode(instance: Instance) -> bytes:
    raw = asdict(instance)
    raw["health"] = instance.health.value
    raw["contract"]["status"] = instance.contract.status.value
    return json.dumps(raw, sort_keys=True).encode()


def decode(value: bytes) -> Instance:
    raw: dict[str, Any] = json.loads(value)
    contract = raw.pop("contract")
    return Instance(
        **{**raw, "health": Health(raw["health"])},
        contract=ContractStanding(
            fingerprint=contract["fingerprint"],
            status=ContractStatus(contract["status"]),
            version=contract["version"],
            reason=contract["reason"],
            findings=tuple(contract["findings"]),
        ),
    )


def bucket_config(replicas: int, lease_ttl_s: float, forget_after_s: float) -> KeyValueConfig:
    return KeyValueConfig(
        bucket=BUCKET,
        description="Concord registry: the instance table, one key per instance",
        history=1,
        ttl=lease_ttl_s + forget_after_s,
        limit_marker_ttl=max(1.0, lease_ttl_s),
        storage=StorageType.FILE,
        replicas=replicas,
    )


class JetStreamInstances:
    """`InstanceStore` over the shared bucket; `open()` before serving, `run` in background."""

    def __init__(
        self,
        bus: Bus,
        table: InstanceTable,
        replicas: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._table = table
        self._clock = clock
        self._revisions: dict[str, int] = {}
        self._gone: set[str] = set()
        """Ids deleted from the bucket: never written again (ids are never reused), so a late
        entry for one is ignored."""
        self._superseded: set[str] = set()
        self._writing: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        """One write per instance at a time within this replica: races are between replicas."""
        self._bucket = WatchedBucket(
            bus,
            bucket_config(replicas, table.lease_ttl_s, table.forget_after_s),
            self._on_put,
            self._on_delete,
        )

    @property
    def table(self) -> InstanceTable:
        return self._table

    async def open(self) -> None:
        await self._bucket.open()
        log.info("shared_instances_loaded", bucket=BUCKET, instances=len(self._table.all()))

    async def run(self) -> None:
        """Follows the bucket, tells streams when a lease lapses in the view, and deletes
        superseded entries."""
        follow = asyncio.create_task(self._bucket.run(), name="instances-watch")
        try:
            while not follow.done():
                self._table.refresh_live_set()
                await self._delete_superseded()
                await asyncio.wait({follow}, timeout=1.0)
            follow.result()
        finally:
            follow.cancel()
            await asyncio.gather(follow, return_exceptions=True)

    # The view, from the watch (and from this replica's own writes, at once).

    def _on_put(self, key: str, value: bytes, revision: int) -> None:
        if key in self._gone or revision <= self._revisions.get(key, 0):
            return
        self._revisions[key] = revision
        for superseded in self._table.put(decode(value)):
            self._forget_locally(superseded)
            self._superseded.add(superseded)

    def _on_delete(self, key: str) -> None:
        self._forget_locally(key)

    def _forget_locally(self, key: str) -> None:
        self._gone.add(key)
        self._revisions.pop(key, None)
        self._writing.pop(key, None)
        self._table.drop(key)

    async def _delete_superseded(self) -> None:
        """Removes from the bucket the older entries the view already hides (a restarted
        process registered again at the same address); any replica may, deletes are idempotent."""
        while self._superseded:
            key = self._superseded.pop()
            try:
                await self._bucket.kv.delete(key)
            except Exception as error:
                log.warning("superseded_instance_not_deleted", instance_id=key, error=repr(error))

    # Changes, each one write to the bucket.

    async def register(
        self,
        service_name: str,
        address: str,
        version: str,
        metadata: dict[str, str],
        contract: ContractStanding | None = None,
    ) -> Instance:
        now = self._clock()
        instance = Instance(
            instance_id=new_id("ins"),
            service_name=service_name,
            address=address,
            version=version,
            metadata=dict(metadata),
            lease_expires_at=now + self._table.lease_ttl_s,
            contract=contract or ContractStanding(),
            registered_at=now,
        )
        revision = await self._bucket.kv.create(instance.instance_id, encode(instance))
        self._on_put(instance.instance_id, encode(instance), revision)
        return instance

    async def heartbeat(self, instance_id: str) -> Instance:
        def renew(instance: Instance) -> tuple[bool, Instance]:
            instance.lease_expires_at = self._clock() + self._table.lease_ttl_s
            return True, instance

        found = await self._change(instance_id, renew)
        if found is None:
            raise NotFoundError("instance", instance_id)
        return found[1]

    async def deregister(self, instance_id: str) -> Instance:
        instance = await self._delete(instance_id, lambda _: True)
        if instance is None:
            raise NotFoundError("instance", instance_id)
        return instance

    async def set_contract(self, instance_id: str, standing: ContractStanding) -> bool:
        def judge(instance: Instance) -> tuple[bool, bool]:
            if instance.contract == standing:
                return False, False
            instance.contract = standing
            return True, True

        found = await self._change(instance_id, judge)
        return found is not None and found[1]

    async def record_probe(self, instance_id: str, outcome: ProbeOutcome) -> HealthChange | None:
        failures = self._table.failures_to_evict
        found = await self._change(instance_id, lambda i: probe_applied(i, outcome, failures))
        return None if found is None else found[1]

    async def expire_leases(self) -> tuple[list[HealthChange], list[Instance]]:
        changes: list[HealthChange] = []
        forgotten: list[Instance] = []
        forget_after_s = self._table.forget_after_s
        for instance in self._table.all():
            now = self._clock()
            if instance.leased(now):
                continue
            if forgettable(instance, now, forget_after_s):
                gone = await self._delete(
                    instance.instance_id, lambda i: forgettable(i, self._clock(), forget_after_s)
                )
                if gone is not None:
                    forgotten.append(gone)
                continue
            found = await self._change(instance.instance_id, self._lapse)
            if found is not None and found[1] is not None:
                changes.append(found[1])
        return changes, forgotten

    def _lapse(self, instance: Instance) -> tuple[bool, HealthChange | None]:
        if instance.leased(self._clock()):
            return False, None  # renewed meanwhile through another replica
        change = health_set(instance, Health.NOT_SERVING, "lease lapsed")
        return change is not None, change

    async def _current(self, instance_id: str, fresh: bool) -> tuple[Instance, int] | None:
        """The instance and its revision: from the view first (no round trip), from the
        bucket after a lost race or when the view has not seen it yet."""
        if not fresh and instance_id in self._revisions:
            with contextlib.suppress(NotFoundError):
                return replace(self._table.get(instance_id)), self._revisions[instance_id]
        try:
            entry = await self._bucket.kv.get(instance_id)
        except KeyNotFoundError:
            return None
        if entry.value is None or entry.revision is None:
            return None
        return decode(entry.value), entry.revision

    async def _change(self, instance_id: str, change: Change[T]) -> tuple[Instance, T] | None:
        """Read, change, write with `last=revision`; again from a fresh read on a lost race.
        None when the instance is not in the bucket."""
        async with self._writing[instance_id]:
            return await self._change_once(instance_id, change)

    async def _change_once(self, instance_id: str, change: Change[T]) -> tuple[Instance, T] | None:
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(random.uniform(0, RACE_BACKOFF_S * attempt))
            current = await self._current(instance_id, fresh=attempt > 0)
            if current is None:
                return None
            instance, revision = current
            write, result = change(instance)
            if not write:
                return instance, result
            try:
                new_revision = await self._bucket.kv.update(
                    instance_id, encode(instance), last=revision
                )
            except Exception as error:
                if lost_race(error):
                    continue
                raise
            self._on_put(instance_id, encode(instance), new_revision)
            return instance, result
        raise RuntimeError(f"instance {instance_id}: {ATTEMPTS} writes lost the race in a row")

    async def _delete(self, instance_id: str, still: Callable[[Instance], bool]) -> Instance | None:
        """Deletes with `last=revision` while `still(instance)` holds; the instance when this
        call deleted it, None when it was gone or another writer changed it first."""
        async with self._writing[instance_id]:
            return await self._delete_once(instance_id, still)

    async def _delete_once(
        self, instance_id: str, still: Callable[[Instance], bool]
    ) -> Instance | None:
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(random.uniform(0, RACE_BACKOFF_S * attempt))
            current = await self._current(instance_id, fresh=attempt > 0)
            if current is None:
                return None
            instance, revision = current
            if not still(instance):
                return None
            try:
                await self._bucket.kv.delete(instance_id, last=revision)
            except Exception as error:
                if lost_race(error):
                    continue
                raise
            self._forget_locally(instance_id)
            return instance
        raise RuntimeError(f"instance {instance_id}: {ATTEMPTS} deletes lost the race in a row")
