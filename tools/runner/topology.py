"""Where each of Concord's processes listens and keeps its state.

Every port and path is an environment variable with the default from the design, so tests can
run a second stack on free ports beside `make up`. The platform's own processes (registry,
NATS, Envoy) are fields; the shop's processes are whatever the catalogue lists
(runtime/catalogue.py), each on its `port_env` (`CONCORD_ORDERS_PORT`) or its default port.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from runtime import catalogue
from runtime.settings import DEFAULT_METRICS_PORTS
from tools.runner.ports import free_ports


def _default_service_ports() -> dict[str, int]:
    return {p.name: p.default_port for p in catalogue.CATALOGUE}


def _default_metrics_ports() -> dict[str, int]:
    return dict(DEFAULT_METRICS_PORTS)


INSTANCE_PORT_STEP = 10
"""By default instance k (from 2) of a shop service listens on its port + 10 (k - 1), metrics
likewise: orders on 50051, its second instance on 50061, metrics on 9461."""


def _default_instance_ports(instances: int, metrics: bool) -> dict[str, tuple[int, ...]]:
    return {
        p.name: tuple(
            (p.metrics_port if metrics else p.default_port) + INSTANCE_PORT_STEP * k
            for k in range(1, instances)
        )
        for p in catalogue.shop_services()
    }


@dataclass(frozen=True)
class Scale:
    """What the scaled topology (`make up-cluster`) runs beside PayGate and Envoy: PostgreSQL
    (one database per service), three clustered nats-server nodes whose streams keep three
    replicas, registry replicas sharing their state in JetStream key-value buckets, and
    `instances` of each shop service. Node 1 and registry 1 are on the topology's own ports;
    the other nodes and replicas, the cluster routes, PostgreSQL and the instances after the
    first have ports of their own."""

    instances: int = 2
    postgres_port: int = 5440
    nats_ports: tuple[int, ...] = (4223, 4224)
    """Client ports of nodes 2 and 3."""
    nats_monitor_ports: tuple[int, ...] = (8223, 8224)
    nats_cluster_ports: tuple[int, ...] = (6222, 6223, 6224)
    """Route ports of nodes 1, 2 and 3."""
    nats_replicas: int = 3
    registry_ports: tuple[int, ...] = (50060,)
    """Ports of registry replicas 2, 3, ... (the registry's port + 10 (k - 1))."""
    registry_metrics_ports: tuple[int, ...] = (9460,)
    instance_ports: Mapping[str, tuple[int, ...]] = field(
        default_factory=lambda: _default_instance_ports(2, metrics=False)
    )
    """Shop service -> the ports of its instances 2, 3, ..."""
    instance_metrics_ports: Mapping[str, tuple[int, ...]] = field(
        default_factory=lambda: _default_instance_ports(2, metrics=True)
    )

    @classmethod
    def on_free_ports(cls, instances: int = 2) -> Scale:
        services = [p.name for p in catalogue.shop_services()]
        extra = instances - 1
        ports = iter(free_ports(10 + 2 * extra * len(services)))

        def take(n: int) -> tuple[int, ...]:
            return tuple(next(ports) for _ in range(n))

        return cls(
            instances=instances,
            postgres_port=next(ports),
            nats_ports=take(2),
            nats_monitor_ports=take(2),
            nats_cluster_ports=take(3),
            registry_ports=take(1),
            registry_metrics_ports=take(1),
            instance_ports={name: take(extra) for name in services},
            instance_metrics_ports={name: take(extra) for name in services},
        )


@dataclass(frozen=True)
class Topology:
    data_dir: Path
    nats_port: int = 4222
    nats_monitor_port: int = 8222
    registry_port: int = 50050
    gateway_port: int = 8080
    gateway_admin_port: int = 9901
    service_ports: Mapping[str, int] = field(default_factory=_default_service_ports)
    """Process name (the catalogue's) -> port."""
    metrics_ports: Mapping[str, int] = field(default_factory=_default_metrics_ports)
    """Process name (the catalogue's, and `registry`) -> its Prometheus metrics port."""
    scale: Scale | None = None
    """None: the embedded default (SQLite, one nats-server, one instance of each service)."""

    @classmethod
    def _platform_ports(cls) -> list[str]:
        return [
            f.name
            for f in fields(cls)
            if f.name not in ("data_dir", "service_ports", "metrics_ports", "scale")
        ]

    @classmethod
    def from_env(cls, default_data_dir: Path) -> Topology:
        """CONCORD_DATA_DIR, CONCORD_NATS_PORT, CONCORD_ORDERS_PORT, ... override the defaults."""
        values: dict[str, object] = {
            "data_dir": Path(os.environ.get("CONCORD_DATA_DIR", default_data_dir)).absolute()
        }
        for name in cls._platform_ports():
            raw = os.environ.get(f"CONCORD_{name.upper()}")
            if raw is not None:
                values[name] = int(raw)
        values["service_ports"] = {
            p.name: int(os.environ.get(p.port_env, p.default_port)) for p in catalogue.CATALOGUE
        }
        values["metrics_ports"] = {
            name: int(os.environ.get(f"CONCORD_{name.upper()}_METRICS_PORT", port))
            for name, port in DEFAULT_METRICS_PORTS.items()
        }
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def on_free_ports(cls, data_dir: Path) -> Topology:
        names = cls._platform_ports()
        services = [p.name for p in catalogue.CATALOGUE]
        metered = list(DEFAULT_METRICS_PORTS)
        ports = free_ports(len(names) + len(services) + len(metered))
        first_metrics = len(names) + len(services)
        return cls(
            data_dir=data_dir,
            **dict(zip(names, ports[: len(names)], strict=True)),  # type: ignore[arg-type]
            service_ports=dict(zip(services, ports[len(names) : first_metrics], strict=True)),
            metrics_ports=dict(zip(metered, ports[first_metrics:], strict=True)),
        )

    def scaled(self, scale: Scale | None = None) -> Topology:
        """This topology scaled out, its data in a folder of its own (`<data_dir>/cluster`), so
        the embedded default's SQLite files and JetStream store are never mixed with it."""
        return dataclasses.replace(self, data_dir=self.data_dir / "cluster", scale=scale or Scale())

    def port(self, process: str) -> int:
        """The port of a catalogue process (`orders`, `paygate`, ...)."""
        return self.service_ports[catalogue.process(process).name]

    def instances(self, process: str) -> int:
        """How many instances of `process` run: the scale's count for the shop's services, one
        of anything else (PayGate stands in for one external provider)."""
        shop = catalogue.process(process).name in {p.name for p in catalogue.shop_services()}
        return self.scale.instances if self.scale is not None and shop else 1

    def instance_port(self, process: str, instance: int) -> int:
        if instance == 1 or self.scale is None:
            return self.port(process)
        return self.scale.instance_ports[process][instance - 2]

    def instance_metrics_port(self, process: str, instance: int) -> int:
        if instance == 1 or self.scale is None:
            return self.metrics_ports[process]
        return self.scale.instance_metrics_ports[process][instance - 2]

    def metrics_url(self, process: str) -> str:
        """Where `process` (the registry or one of the catalogue's) serves /metrics."""
        return f"http://127.0.0.1:{self.metrics_ports[process]}/metrics"

    def address(self, process: str) -> str:
        return f"127.0.0.1:{self.port(process)}"

    def with_port(self, process: str, port: int) -> Topology:
        """This topology with one process moved, e.g. onto a socket a test holds."""
        return dataclasses.replace(self, service_ports={**self.service_ports, process: port})

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def registry_ports(self) -> list[int]:
        """The registry's port, then its replicas' in the scaled topology."""
        extra = list(self.scale.registry_ports) if self.scale is not None else []
        return [self.registry_port, *extra]

    @property
    def registry_address(self) -> str:
        """Every registry replica, comma-separated (CONCORD_REGISTRY_ADDRESS): clients fail
        over to a surviving one."""
        return ",".join(f"127.0.0.1:{port}" for port in self.registry_ports)

    def registry_metrics_port(self, replica: int) -> int:
        if replica == 1 or self.scale is None:
            return self.metrics_ports["registry"]
        return self.scale.registry_metrics_ports[replica - 2]

    @property
    def nats_client_ports(self) -> list[int]:
        extra = list(self.scale.nats_ports) if self.scale is not None else []
        return [self.nats_port, *extra]

    @property
    def nats_url(self) -> str:
        """Every node's URL, comma-separated: clients fail over to a surviving node."""
        return ",".join(f"nats://127.0.0.1:{port}" for port in self.nats_client_ports)
