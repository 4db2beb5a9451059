"""Real registry and service processes for tests, on free ports with fresh data folders.

Processes start as `sys.executable -m <package>` with this interpreter's sys.path, so they find
the code and the generated stubs the same way under `bazel test` (runfiles) and plain pytest.
Settings are short so that probes, leases and heartbeats play out within seconds.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tools.runner.health import grpc_serving
from tools.runner.ports import free_port
from tools.runner.process import HoldsProcess, ManagedProcess

READY_TIMEOUT_S = 60.0
FAST_REGISTRY_SETTINGS = {
    "CONCORD_REGISTRY_PROBE_INTERVAL_S": "1.0",
    "CONCORD_REGISTRY_PROBE_TIMEOUT_S": "0.5",
    "CONCORD_REGISTRY_PROBE_FAILURES_TO_EVICT": "2",
    "CONCORD_REGISTRY_LEASE_TTL_S": "6.0",
    "CONCORD_REGISTRY_XDS_WARMUP_S": "0",
    "CONCORD_REGISTRY_RESOLVE_WARMUP_S": "0",
    "CONCORD_SHUTDOWN_GRACE_S": "2.0",
}
FAST_CLIENT_SETTINGS = {
    "CONCORD_HEARTBEAT_INTERVAL_S": "0.5",
    "CONCORD_REGISTRATION_RETRY_MAX_S": "0.5",
    "CONCORD_RESOLVE_CACHE_TTL_S": "0.2",
}


def python_env() -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join(sys.path), "PYTHONUNBUFFERED": "1"}


@dataclass
class ConcordProcess(HoldsProcess):
    """One Concord process (`python -m module`), ready when gRPC health says SERVING."""

    name: str
    module: str
    port: int
    env: dict[str, str]
    log_dir: Path
    process: ManagedProcess | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> ConcordProcess:
        self.process = ManagedProcess(
            name=self.name,
            argv=[sys.executable, "-m", self.module],
            log_path=self.log_dir / f"{self.name}.log",
            env={**python_env(), **self.env},
        ).start()
        self.process.wait_until(lambda: grpc_serving(self.address), timeout_s)
        return self

    def log_tail(self) -> str:
        return self.process.log_tail() if self.process is not None else "(not started)"


def registry_process(data_dir: Path, log_dir: Path, **overrides: str) -> ConcordProcess:
    port = free_port()
    env = {
        "CONCORD_DATA_DIR": str(data_dir),
        "CONCORD_REGISTRY_PORT": str(port),
        "CONCORD_REGISTRY_METRICS_PORT": "0",  # any free port: tests run side by side
        **FAST_REGISTRY_SETTINGS,
        **overrides,
    }
    return ConcordProcess("registry", "registry", port, env, log_dir)


def service_process(
    service: str,
    data_dir: Path,
    log_dir: Path,
    registry_address: str,
    nats_url: str,
    instance: str = "",
) -> ConcordProcess:
    """A Concord service (services.<service>) that registers with `registry_address`."""
    port = free_port()
    env = {
        "CONCORD_DATA_DIR": str(data_dir),
        f"CONCORD_{service.upper()}_PORT": str(port),
        f"CONCORD_{service.upper()}_METRICS_PORT": "0",
        "CONCORD_NATS_URL": nats_url,
        "CONCORD_REGISTRY_ADDRESS": registry_address,
        "CONCORD_SHUTDOWN_GRACE_S": "2.0",
        **FAST_CLIENT_SETTINGS,
    }
    name = f"{service}{instance}"
    return ConcordProcess(name, f"services.{service}", port, env, log_dir)
