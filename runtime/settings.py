"""Settings from environment variables, parsed once into a typed object.

Defaults are the local topology of `make up`; tests override them to run a second stack on
free ports. Every timeout and limit carries its unit in its name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from runtime.catalogue import BY_NAME
from runtime.streams import DAY_S, DUPLICATE_WINDOW_S, MIB, StreamLimits


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r} is not a number") from exc


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r} is not an integer") from exc


REGISTRY_DEFAULT_PORT = 50050
"""The platform's own port; every other default is the catalogue's."""
DEFAULT_PORTS = {
    "registry": REGISTRY_DEFAULT_PORT,
    **{p.name: p.default_port for p in BY_NAME.values()},
}
REGISTRY_DEFAULT_METRICS_PORT = 9450
DEFAULT_METRICS_PORTS = {
    "registry": REGISTRY_DEFAULT_METRICS_PORT,
    **{p.name: p.metrics_port for p in BY_NAME.values()},
}


def nats_servers(raw: str) -> tuple[str, ...]:
    """`CONCORD_NATS_URL` as a list: one URL, or several separated by commas (the nodes of a
    JetStream cluster; the client connects to any of them and fails over to the others)."""
    servers = tuple(url.strip() for url in raw.split(",") if url.strip())
    if not servers:
        raise ValueError(f"CONCORD_NATS_URL={raw!r} names no server")
    return servers


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean (true/false, 1/0, on/off)")


@dataclass(frozen=True)
class MetricsSettings:
    """`CONCORD_METRICS_ENABLED=false` serves no metrics and counts nothing (the benchmark's
    baseline); `CONCORD_<NAME>_METRICS_PORT` moves one process's endpoint (0: any free port)."""

    enabled: bool
    port: int
    scrape_timeout_s: float

    @classmethod
    def from_env(cls, process: str) -> MetricsSettings:
        return cls(
            enabled=env_bool("CONCORD_METRICS_ENABLED", True),
            port=env_int(
                f"CONCORD_{process.upper()}_METRICS_PORT", DEFAULT_METRICS_PORTS.get(process, 0)
            ),
            scrape_timeout_s=env_float("CONCORD_METRICS_SCRAPE_TIMEOUT_S", 5.0),
        )


INBOX_RETENTION_MARGIN_S = DAY_S
"""Beyond the longest a guarded message can come back: clock skew between hosts, a late run."""


def required_inbox_retention_s(streams: StreamLimits) -> float:
    """The shortest inbox retention that never lets a duplicate through. An inbox entry is
    written when its consumer processes the message, at or after publication; the message can
    come back to that consumer
    - from its stream while the stream holds it (a consumer recreated from the start, a
      redelivery): within `event_max_age_s` of publication (commands leave their work queue
      once acked, and an unacked one is redelivered within the ack wait to any live instance);
    - as a replay of a dead letter another consumer of the same event gave up on: dead-lettered
      at the latest while the event is still on its stream, then kept `dead_letter_max_age_s`;
    - republished by an outbox relay after JetStream's duplicate window let it through.
    So: the longest of (event age + dead-letter age) and the duplicate window, plus a margin."""
    horizon_s = max(
        streams.event_max_age_s + streams.dead_letter_max_age_s, streams.duplicate_window_s
    )
    return horizon_s + INBOX_RETENTION_MARGIN_S


@dataclass(frozen=True)
class RetentionSettings:
    """What the `retention` job (runtime/retention.py) removes and how much the streams keep;
    docs/platform.md, "Retention"."""

    interval_s: float = 60.0
    batch_size: int = 1000
    """Rows deleted per transaction, so a prune never holds the writer for long."""
    outbox_retention_s: float = 3600.0
    """How long a published outbox row stays (for operators); an unsent row is never pruned."""
    streams: StreamLimits = field(default_factory=StreamLimits)
    inbox_retention_s: float = 0.0
    """0: derived, `required_inbox_retention_s(streams)`."""

    def __post_init__(self) -> None:
        required_s = required_inbox_retention_s(self.streams)
        if not self.inbox_retention_s:
            object.__setattr__(self, "inbox_retention_s", required_s)
        elif self.inbox_retention_s < required_s:
            raise ValueError(
                f"CONCORD_INBOX_RETENTION_DAYS={self.inbox_retention_s / DAY_S:g} would prune "
                "inbox entries while their messages can still come back (a duplicate would be "
                f"applied twice): it must be at least {required_s / DAY_S:g} days, "
                "CONCORD_EVENT_STREAM_MAX_AGE_DAYS + CONCORD_DEAD_LETTER_RETENTION_DAYS "
                f"+ {INBOX_RETENTION_MARGIN_S / DAY_S:g} day margin; leave it unset to derive it"
            )
        if self.interval_s <= 0 or self.batch_size <= 0 or self.outbox_retention_s < 0:
            raise ValueError(
                "CONCORD_RETENTION_INTERVAL_S and CONCORD_RETENTION_BATCH_SIZE must be positive,"
                " CONCORD_OUTBOX_RETENTION_S not negative"
            )

    @classmethod
    def from_env(cls) -> RetentionSettings:
        streams = StreamLimits(
            event_max_age_s=env_float("CONCORD_EVENT_STREAM_MAX_AGE_DAYS", 7.0) * DAY_S,
            event_max_bytes=env_int("CONCORD_EVENT_STREAM_MAX_MIB", 512) * MIB,
            command_max_bytes=env_int("CONCORD_COMMAND_STREAM_MAX_MIB", 64) * MIB,
            dead_letter_max_age_s=env_float("CONCORD_DEAD_LETTER_RETENTION_DAYS", 14.0) * DAY_S,
            dead_letter_max_bytes=env_int("CONCORD_DEAD_LETTER_STREAM_MAX_MIB", 128) * MIB,
            duplicate_window_s=env_float("CONCORD_STREAM_DUPLICATE_WINDOW_S", DUPLICATE_WINDOW_S),
        )
        return cls(
            interval_s=env_float("CONCORD_RETENTION_INTERVAL_S", 60.0),
            batch_size=env_int("CONCORD_RETENTION_BATCH_SIZE", 1000),
            outbox_retention_s=env_float("CONCORD_OUTBOX_RETENTION_S", 3600.0),
            streams=streams,
            inbox_retention_s=env_float("CONCORD_INBOX_RETENTION_DAYS", 0.0) * DAY_S,
        )


@dataclass(frozen=True)
class ServiceSettings:
    service: str
    host: str
    port: int
    data_dir: Path
    nats_servers: tuple[str, ...]
    nats_replicas: int
    """Replicas of every stream: 1 on one nats-server, 3 on a three-node cluster."""
    registry_address: str
    version: str
    shutdown_grace_s: float
    outbox_poll_interval_s: float
    outbox_batch_size: int
    consumer_ack_wait_s: float
    consumer_max_deliver: int
    consumer_fetch_batch: int
    consumer_idle_check_s: float
    nats_request_timeout_s: float
    sqlite_busy_timeout_ms: int
    metrics: MetricsSettings
    database_url: str | None = field(default=None, repr=False)
    """PostgreSQL (`postgresql://user@host:port/db`) when set; SQLite at `database_path` when
    not. Never logged as is: it may carry a password (postgres_database.redacted)."""
    database_pool_size: int = 4
    health_port: int | None = None
    """`CONCORD_<NAME>_HEALTH_PORT`: also serve grpc.health.v1 alone, in plaintext, there (for
    probes without a client certificate once the main port speaks mutual TLS); unset: none."""
    lease_ttl_s: float = 5.0
    """How long a singleton job's lease (runtime/lease.py) outlives its holder's last renewal:
    the longest another instance waits to take over from one that was killed."""
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    outbox_publish_window: int = 64
    """Outbox publishes in flight at once, their acks awaited in order; 1: one at a time."""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def database_path(self) -> Path:
        return self.data_dir / self.service / f"{self.service}.sqlite3"

    @classmethod
    def from_env(cls, service: str) -> ServiceSettings:
        prefix = f"CONCORD_{service.upper()}_"
        return cls(
            service=service,
            host=env_str(prefix + "HOST", "127.0.0.1"),
            port=env_int(prefix + "PORT", DEFAULT_PORTS.get(service, 0)),
            data_dir=Path(env_str("CONCORD_DATA_DIR", ".data")).absolute(),
            nats_servers=nats_servers(env_str("CONCORD_NATS_URL", "nats://127.0.0.1:4222")),
            nats_replicas=env_int("CONCORD_NATS_REPLICAS", 1),
            registry_address=env_str("CONCORD_REGISTRY_ADDRESS", "127.0.0.1:50050"),
            version=env_str("CONCORD_VERSION", "dev"),
            shutdown_grace_s=env_float("CONCORD_SHUTDOWN_GRACE_S", 10.0),
            outbox_poll_interval_s=env_float("CONCORD_OUTBOX_POLL_INTERVAL_S", 0.5),
            outbox_batch_size=env_int("CONCORD_OUTBOX_BATCH_SIZE", 100),
            outbox_publish_window=env_int("CONCORD_OUTBOX_PUBLISH_WINDOW", 64),
            consumer_ack_wait_s=env_float("CONCORD_CONSUMER_ACK_WAIT_S", 10.0),
            consumer_max_deliver=env_int("CONCORD_CONSUMER_MAX_DELIVER", 8),
            consumer_fetch_batch=env_int("CONCORD_CONSUMER_FETCH_BATCH", 64),
            consumer_idle_check_s=env_float("CONCORD_CONSUMER_IDLE_CHECK_S", 2.0),
            nats_request_timeout_s=env_float("CONCORD_NATS_REQUEST_TIMEOUT_S", 5.0),
            sqlite_busy_timeout_ms=env_int("CONCORD_SQLITE_BUSY_TIMEOUT_MS", 5000),
            metrics=MetricsSettings.from_env(service),
            database_url=os.environ.get(prefix + "DATABASE_URL") or None,
            database_pool_size=env_int("CONCORD_DATABASE_POOL_SIZE", 4),
            lease_ttl_s=env_float("CONCORD_LEASE_TTL_S", 5.0),
            health_port=env_int(prefix + "HEALTH_PORT", 0) or None,
            retention=RetentionSettings.from_env(),
        )
