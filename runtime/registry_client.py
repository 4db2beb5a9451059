"""Settings every process shares for talking to the registry (registration and discovery),
and the one channel they use to reach it.

Kept apart from ServiceSettings because plain callers (the dev CLI, tests, scripts) resolve
services too without being a service themselves.

`CONCORD_REGISTRY_ADDRESS` is one `host:port` or a comma-separated list of registry replicas.
A list becomes one gRPC target (`ipv4:a:p,b:p`) balanced `round_robin`: the channel keeps a
connection to every replica and sends each call to one that is up, so when a replica dies the
next call goes to another, and grpc retries a registration call that met UNAVAILABLE on
another replica by itself. A list must be IP addresses (grpc's `ipv4:`/`ipv6:` schemes); in a
cluster, one DNS name that resolves to every replica (a headless Service) gives the same.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

import grpc

from runtime import transport_security
from runtime.settings import env_float, env_str

DEFAULT_REGISTRY_ADDRESS = "127.0.0.1:50050"
DISCOVERY_SERVICE = "concord.registry.v1.DiscoveryService"
RETRIED_METHODS = ("Register", "Heartbeat", "Deregister", "ListInstances")
"""Retried by grpc on UNAVAILABLE (a replica died under the call). Not Resolve: its UNAVAILABLE
is usually the registry's answer "none live", and callers keep their last addresses anyway."""
SERVICE_CONFIG = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [
        {
            "name": [{"service": DISCOVERY_SERVICE, "method": m} for m in RETRIED_METHODS],
            "retryPolicy": {
                "maxAttempts": 3,
                "initialBackoff": "0.1s",
                "maxBackoff": "1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ],
}
CHANNEL_OPTIONS = (
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
    ("grpc.enable_retries", 1),
)


def registry_addresses(raw: str) -> tuple[str, ...]:
    """`CONCORD_REGISTRY_ADDRESS` as a list of `host:port`."""
    addresses = tuple(a.strip() for a in raw.split(",") if a.strip())
    if not addresses:
        raise ValueError(f"CONCORD_REGISTRY_ADDRESS={raw!r} names no registry")
    return addresses


def _ip_family(address: str) -> str | None:
    host = address.rpartition(":")[0].strip("[]")
    try:
        return "ipv4" if ipaddress.ip_address(host).version == 4 else "ipv6"
    except ValueError:
        return None


def registry_target(raw: str) -> str:
    """The gRPC target for one registry or several replicas (`ipv4:a:p,b:p`)."""
    addresses = registry_addresses(raw)
    if len(addresses) == 1:
        return addresses[0]
    families = {_ip_family(a) for a in addresses}
    if len(families) != 1 or None in families:
        raise ValueError(
            f"CONCORD_REGISTRY_ADDRESS={raw!r}: a list of replicas must be IP addresses of one "
            "family; give one DNS name that resolves to every replica instead"
        )
    return f"{families.pop()}:{','.join(addresses)}"


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

    def channel(self) -> grpc.aio.Channel:
        """A channel to the registry, or to whichever of its replicas is up (mutual TLS when
        this process is configured for it)."""
        return transport_security.channel(
            registry_target(self.registry_address), options=CHANNEL_OPTIONS
        )
