"""Settings every process shares for talking to the registry (registration and discovery).

Kept apart from ServiceSettings because plain callers (the dev CLI, tests, scripts) resolve
services too without being a service themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.settings import env_float, env_str

DEFAULT_REGISTRY_ADDRESS = "127.0.0.1:50050"


@dataclass(frozen=True)
class RegistryClientSettings:
    registry_address: str
    heartbeat_interval_s: float
    """How often a registered instance renews its lease (never less often than TTL / 3)."""
    registry_call_timeout_s: float
    """Deadline of every Register, Heartbeat, Deregister and Resolve call."""
    registration_retry_max_s: float
    """Ceiling of the back-off between attempts while the registry is unreachable."""
    resolve_cache_ttl_s: float
    """How long a resolved set of addresses is reused before asking the registry again."""

    @classmethod
    def from_env(cls) -> RegistryClientSettings:
        return cls(
            registry_address=env_str("CONCORD_REGISTRY_ADDRESS", DEFAULT_REGISTRY_ADDRESS),
            heartbeat_interval_s=env_float("CONCORD_HEARTBEAT_INTERVAL_S", 2.0),
            registry_call_timeout_s=env_float("CONCORD_REGISTRY_CALL_TIMEOUT_S", 2.0),
            registration_retry_max_s=env_float("CONCORD_REGISTRATION_RETRY_MAX_S", 5.0),
            resolve_cache_ttl_s=env_float("CONCORD_RESOLVE_CACHE_TTL_S", 1.0),
        )
