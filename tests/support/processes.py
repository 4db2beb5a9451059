"""Starts Concord's own processes for tests: the same components `make up` starts, on free
ports, as `python -m <package>` with the test's import path, attached to the test."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from tools.devstack.process import ManagedProcess
from tools.devstack.stack import Component, Stack

READY_TIMEOUT_S = 60.0
DEPENDENCIES = {"payments": ("paygate",)}
"""Started first when missing: payments cannot authorise without its provider."""


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


@dataclass
class ServiceRunner:
    """Starts services of a test stack and stops them all when the test ends."""

    stack: Stack
    running: dict[str, RunningService] = field(default_factory=dict)

    def start(
        self, name: str, env: dict[str, str] | None = None, wait: bool = True
    ) -> RunningService:
        for dependency in DEPENDENCIES.get(name, ()):
            if dependency not in self.running or not self.running[dependency].process.running():
                self.start(dependency)
        component = self.stack.service(name, extra_env=env)
        process = ManagedProcess(
            name=name,
            argv=component.argv,
            log_path=self.stack.topology.log_dir / f"{name}.log",
            env={**component.env, "PYTHONPATH": os.pathsep.join(sys.path)},
        ).start()
        service = RunningService(component, process)
        self.running[name] = service
        if wait:
            process.wait_until(component.ready, READY_TIMEOUT_S)
        return service

    def restart(self, name: str, env: dict[str, str] | None = None) -> RunningService:
        self.running[name].stop()
        return self.start(name, env)

    def stop_all(self) -> None:
        for service in reversed(list(self.running.values())):
            service.stop()
        self.running.clear()
