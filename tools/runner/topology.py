"""Where each of Concord's processes listens and keeps its state.

Every port and path is an environment variable with the default from the design, so tests can
run a second stack on free ports beside `make up`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from tools.runner.ports import free_ports


@dataclass(frozen=True)
class Topology:
    data_dir: Path
    nats_port: int = 4222
    nats_monitor_port: int = 8222
    registry_port: int = 50050
    orders_port: int = 50051
    inventory_port: int = 50052
    payments_port: int = 50053
    paygate_port: int = 50054
    gateway_port: int = 8080
    gateway_admin_port: int = 9901

    @classmethod
    def from_env(cls, default_data_dir: Path) -> Topology:
        """CONCORD_DATA_DIR, CONCORD_NATS_PORT, CONCORD_ORDERS_PORT, ... override the defaults."""
        values: dict[str, object] = {
            "data_dir": Path(os.environ.get("CONCORD_DATA_DIR", default_data_dir)).absolute()
        }
        for field in fields(cls):
            if field.name == "data_dir":
                continue
            raw = os.environ.get(f"CONCORD_{field.name.upper()}")
            if raw is not None:
                values[field.name] = int(raw)
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def on_free_ports(cls, data_dir: Path) -> Topology:
        names = [f.name for f in fields(cls) if f.name != "data_dir"]
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        return cls(data_dir=data_dir, **ports)

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"
