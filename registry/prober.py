"""Probes every leased instance with grpc.health.v1 Check and feeds the outcomes to the table.

With replicas sharing the table, every replica probes every instance and writes what changed
through the store's revision-checked updates: a dead instance is marked NOT_SERVING (and
later forgotten) by exactly one replica, which alone logs and counts it, and a replica dying
leaves nothing unprobed. The price: failed probes from all replicas add up, so with two
replicas a silent instance is out after `probe_failures_to_evict` failures in total.

A full round runs every `probe_interval_s`; a freshly registered instance is probed at once
(`probe_soon`) so it becomes live without waiting a whole interval. Each round also sweeps
lapsed leases. Every health change is logged as one structured event and counted per service
and new state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from registry.instance_store import InstanceStore
from registry.instances import HealthChange, Instance, ProbeOutcome
from registry.settings import RegistrySettings
from runtime import transport_security
from runtime.logs import get_logger

log = get_logger(__name__)


class Prober:
    def __init__(self, instances: InstanceStore, settings: RegistrySettings) -> None:
        self._instances = instances
        self._table = instances.table
        self._settings = settings
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._wake: asyncio.Event | None = None
        self.transitions: Counter[tuple[str, str]] = Counter()
        """(service name, new health) -> how many times an instance went there."""

    def probe_soon(self) -> None:
        """Asks for an early probe of instances never probed yet (a new registration)."""
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        next_round = loop.time()
        try:
            while True:
                now = loop.time()
                if now >= next_round:
                    await self._probe(self._table.to_probe())
                    await self._sweep_leases()
                    next_round = now + self._settings.probe_interval_s
                else:
                    await self._probe(self._table.to_probe(only_unprobed=True))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), next_round - loop.time())
                self._wake.clear()
        finally:
            for channel in self._channels.values():
                await channel.close()
            self._channels.clear()

    async def _probe(self, instances: list[Instance]) -> None:
        outcomes = await asyncio.gather(*(self._check(i) for i in instances))
        for instance, outcome in zip(instances, outcomes, strict=True):
            self._report(await self._instances.record_probe(instance.instance_id, outcome))
        # A fresh channel next time for every address that failed: a restarted instance is
        # found without waiting out the old channel's reconnect back-off. Only now, after every
        # check of the round is done: a process serves several services on one address, and
        # closing their shared channel would cancel the checks still in flight on it.
        failed = {
            i.address for i, o in zip(instances, outcomes, strict=True) if o is ProbeOutcome.FAILED
        }
        for address in failed:
            await self._drop_channel(address)

    async def _check(self, instance: Instance) -> ProbeOutcome:
        channel = self._channels.get(instance.address)
        if channel is None:
            channel = self._channels[instance.address] = transport_security.channel(
                instance.address
            )
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=instance.service_name),
                timeout=self._settings.probe_timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            log.debug("probe_failed", instance_id=instance.instance_id, code=error.code().name)
            return ProbeOutcome.FAILED
        if reply.status == health_pb2.HealthCheckResponse.SERVING:
            return ProbeOutcome.SERVING
        return ProbeOutcome.NOT_SERVING

    async def _drop_channel(self, address: str) -> None:
        channel = self._channels.pop(address, None)
        if channel is not None:
            await channel.close()

    async def _sweep_leases(self) -> None:
        changes, forgotten = await self._instances.expire_leases()
        for change in changes:
            self._report(change)
        for instance in forgotten:
            log.info(
                "instance_forgotten",
                instance_id=instance.instance_id,
                service_name=instance.service_name,
                address=instance.address,
            )
        in_use = {i.address for i in self._table.all()}
        for address in [a for a in self._channels if a not in in_use]:
            await self._drop_channel(address)

    def _report(self, change: HealthChange | None) -> None:
        if change is None:
            return
        instance = change.instance
        key = (instance.service_name, change.after.value)
        self.transitions[key] += 1
        log.info(
            "instance_health_changed",
            instance_id=instance.instance_id,
            service_name=instance.service_name,
            address=instance.address,
            before=change.before.value,
            after=change.after.value,
            reason=change.reason,
            transitions_total=self.transitions[key],
        )
