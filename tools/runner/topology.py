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

    @classmethod
    def _platform_ports(cls) -> list[str]:
        return [
            f.name
            for f in fields(cls)
            if f.name not in ("data_dir", "service_ports", "metrics_ports")
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

    def port(self, process: str) -> int:
        """The port of a catalogue process (`orders`, `paygate`, ...)."""
        return self.service_ports[catalogue.process(process).name]

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
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"
