"""The registry's own settings, read once from the environment (CONCORD_REGISTRY_*).

The process-wide ones (port, data folder, shutdown grace) come from ServiceSettings like every
service's; these are what only the registry has: leases, probes, xDS and buf.
"""

from __future__ import annotations

import enum
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from runtime.settings import env_float, env_int, env_str

PREFIX = "CONCORD_REGISTRY_"


def _default_buf() -> str:
    beside_python = Path(sys.prefix) / "bin" / "buf"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("buf") or "buf"


class RegistryState(enum.Enum):
    """Where the instance table and the contract versions live (`CONCORD_REGISTRY_STATE`)."""

    MEMORY = "memory"
    """Instances in this process, contracts in its SQLite file: one registry (`make up`)."""
    JETSTREAM = "jetstream"
    """Both in JetStream key-value buckets (CONCORD_NATS_URL, CONCORD_NATS_REPLICAS replicas),
    shared by every registry replica."""


def _state(raw: str) -> RegistryState:
    try:
        return RegistryState(raw)
    except ValueError:
        choices = ", ".join(s.value for s in RegistryState)
        raise ValueError(f"{PREFIX}STATE={raw!r} is not one of {choices}") from None


@dataclass(frozen=True)
class RegistrySettings:
    lease_ttl_s: float
    """A registration lapses this long after its last heartbeat."""
    probe_interval_s: float
    """How often every instance is sent grpc.health.v1 Check."""
    probe_timeout_s: float
    """Deadline of one health probe."""
    probe_failures_to_evict: int
    """Consecutive failed probes (errors, timeouts) before an instance is NOT_SERVING."""
    forget_after_s: float
    """How long an instance whose lease lapsed is still listed before it is forgotten."""
    xds_warmup_s: float
    """After start, endpoints are withheld from Envoy this long so that instances can
    re-register first: Envoy keeps its last endpoints meanwhile instead of getting none."""
    resolve_warmup_s: float
    """After start, a Resolve that finds no live instance is answered UNAVAILABLE with reason
    REGISTRY_WARMING_UP, not DEPENDENCY_UNAVAILABLE, this long: the registry's table is empty
    after a restart until instances register again (their registration back-off, at most
    CONCORD_REGISTRATION_RETRY_MAX_S = 5 s, a heartbeat and a first probe), so callers keep
    the addresses they had instead of believing there are none."""
    xds_connect_timeout_s: float
    """connect_timeout of the clusters served to Envoy."""
    buf_path: str
    buf_timeout_s: float
    """Deadline of one `buf breaking` run."""
    contract_refresh_s: float
    """How often the contract gate looks for a newly published version (instances are judged
    again against it) and retries checks that timed out."""
    contract_images_max: int
    """Instance contract images held in memory (one per unpublished fingerprint), oldest
    dropped first: a dropped one is asked for again on the instance's next Register."""
    state: RegistryState = RegistryState.MEMORY

    @property
    def shared(self) -> bool:
        """Replicas share the state: nothing to warm up after a start, the table is loaded."""
        return self.state is RegistryState.JETSTREAM

    @classmethod
    def from_env(cls) -> RegistrySettings:
        return cls(
            lease_ttl_s=env_float(PREFIX + "LEASE_TTL_S", 10.0),
            probe_interval_s=env_float(PREFIX + "PROBE_INTERVAL_S", 2.0),
            probe_timeout_s=env_float(PREFIX + "PROBE_TIMEOUT_S", 1.0),
            probe_failures_to_evict=env_int(PREFIX + "PROBE_FAILURES_TO_EVICT", 2),
            forget_after_s=env_float(PREFIX + "FORGET_AFTER_S", 60.0),
            xds_warmup_s=env_float(PREFIX + "XDS_WARMUP_S", 5.0),
            resolve_warmup_s=env_float(PREFIX + "RESOLVE_WARMUP_S", 10.0),
            xds_connect_timeout_s=env_float(PREFIX + "XDS_CONNECT_TIMEOUT_S", 1.0),
            buf_path=env_str(PREFIX + "BUF_PATH", _default_buf()),
            buf_timeout_s=env_float(PREFIX + "BUF_TIMEOUT_S", 60.0),
            contract_refresh_s=env_float(PREFIX + "CONTRACT_REFRESH_S", 2.0),
            contract_images_max=env_int(PREFIX + "CONTRACT_IMAGES_MAX", 64),
            state=_state(env_str(PREFIX + "STATE", RegistryState.MEMORY.value)),
        )
