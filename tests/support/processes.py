"""Starts Concord's own processes for tests: the same components `make up` starts, on free
ports, as `python -m <package>` with the test's import path, attached to the test.

Every service finds the others through the registry, so the registry is started first, as a
dependency, and a service counts as started only once the registry lists it as live: a caller
that resolves it right after `start` finds it. Observers (`on_live`) can wait for more, e.g. a
gateway fixture waits until Envoy has the new endpoint.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from concord.registry.v1 import discovery_service_pb2, discovery_service_pb2_grpc

from runtime import catalogue
from runtime.transport_security import TlsSettings, blocking_channel
from tests.support.registry_process import FAST_CLIENT_SETTINGS, FAST_REGISTRY_SETTINGS
from tools.runner.process import ManagedProcess
from tools.runner.stack import Component, Stack

READY_TIMEOUT_S = 60.0
REGISTRY = "registry"
DEPENDENCIES = {
    p.name: (*(() if p.standin else (REGISTRY,)), *p.depends_on) for p in catalogue.CATALOGUE
}
"""Started first when missing: every service registers with and resolves through the registry,
then what the catalogue says it depends on (payments: PayGate, external, so not registered)."""


@dataclass
class RunningService:
    component: Component
    process: ManagedProcess

    @property
    def address(self) -> str:
        return self.component.address

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()


LiveObserver = Callable[[str, RunningService], None]
"""Called with (service name, instance) once the registry lists the instance as live."""


@dataclass
class ServiceRunner:
    """Starts services of a test stack and stops them all when the test ends."""

    stack: Stack
    registry_env: dict[str, str] = field(default_factory=lambda: dict(FAST_REGISTRY_SETTINGS))
    """The registry's settings: short probes and no xDS warm-up, so tests settle in seconds."""
    service_env: dict[str, str] = field(default_factory=dict)
    """Settings for every service the runner starts, under each start's own `env` (e.g. the
    servers of a NATS cluster and CONCORD_NATS_REPLICAS)."""
    running: dict[str, RunningService] = field(default_factory=dict)
    on_live: list[LiveObserver] = field(default_factory=list)

    @property
    def registry_address(self) -> str:
        return f"127.0.0.1:{self.stack.topology.registry_port}"

    def start(
        self, name: str, env: dict[str, str] | None = None, wait: bool = True
    ) -> RunningService:
        return self._start(name, name, env, wait, port=None)

    def start_shop(self) -> None:
        """Every service of the catalogue (stand-ins come as what they depend on)."""
        for process in catalogue.start_order():
            if not process.standin:
                self.start(process.name)

    def start_instance(
        self, name: str, port: int, env: dict[str, str] | None = None, live: bool = True
    ) -> RunningService:
        """Another instance of `name` on `port`, sharing the first one's data folder (for the
        registry: another replica, sharing state when `registry_env` says jetstream). With
        `live=False` it counts as started once it serves, live in the registry or not (an
        instance the registry is expected to keep out)."""
        service = self._start(f"{name}-{port}", name, env, live, port)
        if not live:
            service.process.wait_until(service.component.ready, READY_TIMEOUT_S)
        return service

    def restart(self, name: str, env: dict[str, str] | None = None) -> RunningService:
        self.running[name].stop()
        return self.start(name, env)

    def stop_all(self) -> None:
        for service in reversed(list(self.running.values())):
            service.stop()
        self.running.clear()

    def _start(
        self, key: str, name: str, env: dict[str, str] | None, wait: bool, port: int | None
    ) -> RunningService:
        for dependency in DEPENDENCIES.get(name, ()):
            if dependency not in self.running or not self.running[dependency].process.running():
                self.start(dependency)
        if name == REGISTRY:
            component = self.stack.registry({**self.registry_env, **(env or {})}, port=port)
        else:
            extra = {**FAST_CLIENT_SETTINGS, **self.service_env, **(env or {})}
            component = self.stack.service(name, extra_env=extra, port=port)
        process = ManagedProcess(
            name=key,
            argv=component.argv,
            log_path=self.stack.topology.log_dir / f"{key}.log",
            env={**component.env, "PYTHONPATH": os.pathsep.join(sys.path)},
        ).start()
        service = RunningService(component, process)
        self.running[key] = service
        if wait:
            process.wait_until(component.ready, READY_TIMEOUT_S)
            self._wait_until_live(name, service)
        return service

    def _wait_until_live(self, name: str, service: RunningService) -> None:
        service_name = None if name == REGISTRY else catalogue.process(name).registered_service
        if service_name is None:
            return  # the registry itself and PayGate are not registered
        tls = TlsSettings.from_env(self.registry_env)
        service.process.wait_until(
            lambda: service.address in live_addresses(self.registry_address, service_name, tls),
            READY_TIMEOUT_S,
        )
        for observer in self.on_live:
            observer(name, service)


def live_addresses(
    registry_address: str, service_name: str, tls: TlsSettings | None = None
) -> set[str]:
    """Resolve's answer as addresses; empty when none is live or the registry is away. With
    `tls` (the registry's own certificate will do) over mutual TLS."""
    with blocking_channel(registry_address, tls) as channel:
        stub = discovery_service_pb2_grpc.DiscoveryServiceStub(channel)
        try:
            reply = stub.Resolve(
                discovery_service_pb2.ResolveRequest(service_name=service_name), timeout=2
            )
        except grpc.RpcError:
            return set()
    return {instance.address for instance in reply.instances}
