"""The private stacks the benchmarks run on: nats-server and every service on free ports under
a temporary folder, the registry, and Envoy fed by it when a figure goes through the gateway.

One place for what each bench used to start by hand, and for what several figures read off a
running stack: the process ids (CPU per order, RSS in the soak) and its data folder (disk).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.gateway import running_gateway
from tests.support.processes import REGISTRY, ServiceRunner
from tools.runner.gateway import Gateway, GatewaySettings, RouteLimit, RouteLimits
from tools.runner.nats import NatsServer
from tools.runner.stack import Stack, python_module_launcher
from tools.runner.topology import Topology

UNLIMITED = RouteLimits(
    per_customer=RouteLimit.per_second(1_000_000), global_guard=RouteLimit.per_second(1_000_000)
)
BENCH_GATEWAY = GatewaySettings(reads=UNLIMITED, writes=UNLIMITED, grpc=UNLIMITED)
"""The real gateway with rate limits far above any load a bench sends: a benchmark of what a
request costs must not measure the limiter refusing it (every filter still runs)."""


@dataclass
class BenchStack:
    topology: Topology
    nats: NatsServer
    services: ServiceRunner
    gateway: Gateway | None = None

    def pids(self) -> dict[str, int]:
        """Every process of the stack by name: services, stand-ins, the registry, nats-server
        and Envoy when it runs."""
        found = {name: s.process.pid for name, s in self.services.running.items()}
        if self.nats.process is not None:
            found["nats-server"] = self.nats.process.pid
        if self.gateway is not None and self.gateway.process is not None:
            found["envoy"] = self.gateway.process.pid
        return found


@contextmanager
def bench_stack(
    env: dict[str, str] | None = None,
    *,
    gateway: GatewaySettings | None = None,
    shop: bool = True,
    registry_env: dict[str, str] | None = None,
) -> Iterator[BenchStack]:
    """A stack on free ports in a fresh temporary folder, stopped and removed afterwards.
    `env` is every service's extra settings; `gateway` starts Envoy (from the registry) with
    those settings; `shop=False` starts only nats-server and the registry; `registry_env` goes
    over the tests' fast registry settings."""
    with tempfile.TemporaryDirectory(prefix="concord-bench-") as tmp:
        topology = Topology.on_free_ports(Path(tmp) / "data")
        nats = NatsServer(
            topology.nats_port,
            topology.nats_monitor_port,
            topology.data_dir / "nats",
            topology.log_dir,
        ).start()
        runner = ServiceRunner(
            Stack(topology, repo_root=Path.cwd(), launcher=python_module_launcher),
            service_env=dict(env or {}),
        )
        runner.registry_env.update(registry_env or {})
        stack = BenchStack(topology, nats, runner)
        try:
            runner.start(REGISTRY)
            if shop:
                runner.start_shop()
            if gateway is None:
                yield stack
                return
            with running_gateway(topology, gateway, from_registry=True) as envoy:
                stack.gateway = envoy
                yield stack
        finally:
            runner.stop_all()
            nats.stop()
