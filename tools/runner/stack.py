"""The whole local system as a list of components started in order, in the background.

`make up` starts each component detached with a pid file under `.data/run/`, waits until it is
ready, and skips components already running, so a second `make up` is harmless. Running means
the pid file's process is alive and ours (not a zombie, liveness.py) and the component answers
(`Component.ready`: gRPC health or its port); a process that is alive but does not answer is
stopped and started again. `make down` stops them in reverse order: SIGTERM, then SIGKILL
after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from runtime import catalogue
from runtime.transport_security import TlsSettings
from tools.runner.component import Component
from tools.runner.gateway import gateway_component
from tools.runner.health import grpc_serving
from tools.runner.liveness import GONE_STATES, alive_and_ours, process_state
from tools.runner.nats import NatsCluster, NatsServer
from tools.runner.ports import wait_until_bindable
from tools.runner.postgres import PostgresServer, postgres_url
from tools.runner.process import ManagedProcess
from tools.runner.topology import Topology

SERVICES = tuple(p.name for p in catalogue.shop_services())
"""The shop's own services (they register with the registry); the stand-ins are not among them."""
STOP_GRACE_S = 15.0
READY_TIMEOUT_S = 60.0
PORT_FREE_TIMEOUT_S = 90.0
"""How long `up` waits for a port still held by a closing connection (TIME_WAIT lasts 60 s)."""


class State(StrEnum):
    RUNNING = "running"
    NOT_ANSWERING = "not answering"
    STOPPED = "stopped"


Launcher = Callable[[str], list[str]]
"""Turns a Python package name (`services.inventory`, `registry`) into the argv that runs it."""


def bazel_binary_launcher(repo_root: Path) -> Launcher:
    """Runs the py_binary Bazel built: bazel-bin/services/inventory/inventory."""

    def argv(package: str) -> list[str]:
        path = repo_root / "bazel-bin" / package.replace(".", "/") / package.rsplit(".", 1)[-1]
        return [str(path)]

    return argv


def python_module_launcher(package: str) -> list[str]:
    """Runs `python -m package` with this interpreter: what tests use, under Bazel or not
    (the caller passes its own sys.path as PYTHONPATH)."""
    return [sys.executable, "-m", package]


class Stack:
    def __init__(
        self,
        topology: Topology,
        repo_root: Path,
        launcher: Launcher | None = None,
        service_env_extra: dict[str, str] | None = None,
    ) -> None:
        self.topology = topology
        self.repo_root = repo_root
        self.launcher = launcher or bazel_binary_launcher(repo_root)
        self.service_env_extra = dict(service_env_extra or {})
        """More settings for every service, e.g. CONCORD_<SERVICE>_DATABASE_URL."""

    def components(self) -> list[Component]:
        t = self.topology
        nats = [self._nats(node) for node in self.nats_nodes()]
        if t.scale is None:
            platform = [self.registry(), *self._storage(), *nats]
        else:  # the registry replicas keep their state in NATS: it comes first
            registries = [self.registry(replica=k) for k in range(1, len(t.registry_ports) + 1)]
            platform = [*self._storage(), *nats, *registries]
        return [
            *platform,
            *(
                self.service(p.name, instance=k)
                for p in catalogue.start_order()
                for k in range(1, t.instances(p.name) + 1)
            ),
            gateway_component(t, self.repo_root),
        ]

    def nats_nodes(self) -> list[NatsServer]:
        """One nats-server, or the scaled topology's three clustered nodes (`nats-1`, ...)."""
        t = self.topology
        if t.scale is None:
            return [
                NatsServer(
                    port=t.nats_port,
                    monitor_port=t.nats_monitor_port,
                    data_dir=t.data_dir / "nats",
                    log_dir=t.log_dir,
                )
            ]
        cluster = NatsCluster.on_ports(
            t.nats_client_ports,
            [t.nats_monitor_port, *t.scale.nats_monitor_ports],
            t.scale.nats_cluster_ports,
            t.data_dir / "nats",
            t.log_dir,
        )
        return cluster.nodes

    def _storage(self) -> list[Component]:
        """The scaled topology's PostgreSQL, with a database for each shop service; none in the
        embedded default, whose services keep SQLite files in the data folder."""
        t = self.topology
        if t.scale is None:
            return []
        server = PostgresServer(
            port=t.scale.postgres_port, data_dir=t.data_dir / "postgres", log_dir=t.log_dir
        )

        def create_databases() -> None:
            for name in SERVICES:
                server.ensure_database(name)

        return [
            Component(
                name="postgres",
                address=f"127.0.0.1:{server.port}",
                argv=server.argv(),
                ready=server.accepts_connections,
                waits_for=f"PostgreSQL accepting connections on 127.0.0.1:{server.port}",
                env={},
                note=f"PostgreSQL 15: databases {', '.join(SERVICES)}, one per service",
                ports=(server.port,),
                prepare=server.initdb,
                after_ready=create_databases,
                user=server.run_as,
                cwd=server.data_dir,
            )
        ]

    def registry(
        self, extra_env: dict[str, str] | None = None, replica: int = 1, port: int | None = None
    ) -> Component:
        """Before the services: every service registers with it, and Envoy learns its endpoints
        from it. In the scaled topology replica k (`registry-2`) is one of several sharing
        their state in JetStream (CONCORD_REGISTRY_STATE=jetstream), after the NATS nodes.
        `port` runs another replica beside the topology's (tests), metrics on any free port."""
        t = self.topology
        if port is not None:
            metrics_port, name = 0, f"registry-{port}"
        else:
            port = t.registry_ports[replica - 1]
            metrics_port = t.registry_metrics_port(replica)
            name = "registry" if replica == 1 else f"registry-{replica}"
        address = f"127.0.0.1:{port}"
        env = {
            "CONCORD_DATA_DIR": str(t.data_dir),
            "CONCORD_REGISTRY_PORT": str(port),
            "CONCORD_REGISTRY_METRICS_PORT": str(metrics_port),
            **self._shared_registry_env(),
            **(extra_env or {}),
        }
        tls = TlsSettings.from_env(env)
        return Component(
            name=name,
            marker="registry",
            address=address,
            argv=self.launcher("registry"),
            ready=lambda: grpc_serving(address, tls=tls),
            waits_for=f"gRPC health SERVING on {address}",
            env=env,
            note="discovery, contract registry, xDS (ADS) for Envoy"
            + ("; state shared in JetStream key-value" if t.scale is not None else ""),
            ports=(port, metrics_port) if metrics_port else (port,),
            metrics_url=f"http://127.0.0.1:{metrics_port}/metrics" if metrics_port else None,
        )

    def _shared_registry_env(self) -> dict[str, str]:
        """The scaled topology's registry replicas share their state through the NATS cluster."""
        scale = self.topology.scale
        if scale is None:
            return {}
        return {
            "CONCORD_REGISTRY_STATE": "jetstream",
            "CONCORD_NATS_URL": self.topology.nats_url,
            "CONCORD_NATS_REPLICAS": str(scale.nats_replicas),
        }

    def _nats(self, node: NatsServer) -> Component:
        clustered = "; clustered, streams at 3 replicas" if node.cluster is not None else ""
        return Component(
            name=node.name,
            address=f"127.0.0.1:{node.port} (monitor 127.0.0.1:{node.monitor_port})",
            argv=node.argv(),
            prepare=node.write_config,
            ready=node.ready,
            waits_for=f"port {node.port} to accept connections",
            env={},
            note=f"JetStream, file storage, sync_interval always{clustered}",
            ports=(node.port, node.monitor_port)
            + ((node.cluster.port,) if node.cluster is not None else ()),
            marker="nats-server",
        )

    def service_env(self) -> dict[str, str]:
        """The settings every service reads (runtime/settings.py)."""
        t = self.topology
        return {
            "CONCORD_DATA_DIR": str(t.data_dir),
            "CONCORD_NATS_URL": t.nats_url,
            "CONCORD_REGISTRY_ADDRESS": t.registry_address,
            **{p.port_env: str(t.port(p.name)) for p in catalogue.CATALOGUE},
            **self._scaled_env(),
            **self.service_env_extra,
        }

    def _scaled_env(self) -> dict[str, str]:
        """The scaled topology's settings: three replicas of every stream, and each shop
        service's own PostgreSQL database (the embedded default: SQLite in the data folder)."""
        scale = self.topology.scale
        if scale is None:
            return {}
        return {
            "CONCORD_NATS_REPLICAS": str(scale.nats_replicas),
            **{
                f"CONCORD_{name.upper()}_DATABASE_URL": postgres_url(scale.postgres_port, name)
                for name in SERVICES
            },
        }

    def service(
        self,
        name: str,
        extra_env: dict[str, str] | None = None,
        port: int | None = None,
        instance: int = 1,
    ) -> Component:
        """One of the catalogue's processes, started by the stack's launcher. `instance` k > 1
        is the topology's k-th instance (`orders-2`, on its own ports); `port` runs another
        instance beside the one on the topology's port, its metrics on any free port (it logs
        which). Instances share the service's database: the same SQLite file in the data
        folder, or the same PostgreSQL database. `CONCORD_<NAME>_HOST` and `CONCORD_TLS_*` in
        `extra_env` move it off loopback with mutual TLS; its readiness is checked so too."""
        process = catalogue.process(name)
        t = self.topology
        if instance > 1:
            port, metrics_port = (
                t.instance_port(name, instance),
                t.instance_metrics_port(name, instance),
            )
            another = False
        else:
            another = port is not None and port != t.port(name)
            port = port or t.port(name)
            metrics_port = 0 if another else t.metrics_ports[name]
        env = {
            **self.service_env(),
            process.port_env: str(port),
            process.metrics_port_env: str(metrics_port),
            **(extra_env or {}),
        }
        address = f"{env.get(f'CONCORD_{name.upper()}_HOST', '127.0.0.1')}:{port}"
        tls = TlsSettings.from_env(env)
        return Component(
            name=name if instance == 1 else f"{name}-{instance}",
            marker=name,
            address=address,
            argv=self.launcher(process.package),
            ready=lambda: grpc_serving(address, tls=tls),
            waits_for=f"gRPC health SERVING on {address}",
            env=env,
            note=process.note,
            ports=(port,) if another else (port, metrics_port),
            metrics_url=None if another else f"http://127.0.0.1:{metrics_port}/metrics",
        )

    def _pid_file(self, name: str) -> Path:
        return self.topology.run_dir / f"{name}.pid"

    def _live_pid(self, component: Component) -> int | None:
        """The pid in the component's pid file, if that process is alive and ours: its command
        line names the component (`standins.paygate`, `bazel-bin/registry/registry`,
        `nats-server`, `envoy`)."""
        try:
            pid = int(self._pid_file(component.name).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if alive_and_ours(pid, component.process_marker) else None

    def state(self, component: Component) -> State:
        if self._live_pid(component) is None:
            return State.STOPPED
        return State.RUNNING if component.ready() else State.NOT_ANSWERING

    def running(self) -> bool:
        """Whether any of its processes is alive (answering or not)."""
        return any(self._live_pid(component) is not None for component in self.components())

    def up(self) -> None:
        self.topology.run_dir.mkdir(parents=True, exist_ok=True)
        for component in self.components():
            pid = self._live_pid(component)
            if pid is not None and component.ready():
                print(f"{component.name}: already running (pid {pid})")
                if component.after_ready is not None:
                    component.after_ready()
                continue
            if pid is not None:
                print(f"{component.name}: pid {pid} is alive but not answering; restarting it")
                _stop_group(pid)
            for port in component.ports:
                wait_until_bindable(port, PORT_FREE_TIMEOUT_S, component.name)
            if component.prepare is not None:
                component.prepare()
            began = time.monotonic()
            process = ManagedProcess(
                name=component.name,
                argv=component.argv,
                log_path=self.topology.log_dir / f"{component.name}.log",
                env=component.env,
                cwd=component.cwd or self.repo_root,
                detached=True,
                user=component.user,
            ).start()
            self._pid_file(component.name).write_text(str(process.pid))
            print(
                f"{component.name}: pid {process.pid}, waiting for {component.waits_for}"
                f" (up to {READY_TIMEOUT_S:.0f} s)",
                flush=True,
            )
            process.wait_until(component.ready, READY_TIMEOUT_S)
            if component.after_ready is not None:
                component.after_ready()
            print(f"{component.name}: started in {time.monotonic() - began:.1f} s")

    def down(self) -> None:
        for component in reversed(self.components()):
            pid = self._live_pid(component)
            if pid is not None:
                _stop_group(pid)
                print(f"{component.name}: stopped")
            self._pid_file(component.name).unlink(missing_ok=True)

    def describe(self) -> str:
        rows = [("process", "address", "state", "notes")]
        for c in self.components():
            rows.append((c.name, c.address, self.state(c).value, c.note))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
        ]
        lines.append("metrics (Prometheus):")
        lines += [f"  {c.name}: {c.metrics_url}" for c in self.components() if c.metrics_url]
        lines.append(
            f"logs: {self.topology.log_dir} (python -m tools.devstack logs [process] [-f])"
        )
        gateway = f"http://127.0.0.1:{self.topology.gateway_port}"
        lines.append(f"in a browser: {gateway}/docs (API docs), {gateway}/console (orders)")
        return "\n".join(lines)


def _stop_group(pid: int) -> None:
    """SIGTERM the process group `up` created, SIGKILL it if it lingers."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline:
        state = process_state(pid)
        if state is None or state in GONE_STATES:  # a zombie is gone too: nothing to wait for
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
