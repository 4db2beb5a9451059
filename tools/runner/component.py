"""One process of the local stack, as the stack starts, checks and stops it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Component:
    name: str
    address: str
    argv: list[str]
    ready: Callable[[], bool]
    """Whether it answers: gRPC health SERVING, or its port open."""
    env: dict[str, str]
    note: str
    ports: tuple[int, ...] = ()
    """The loopback ports it listens on; `make up` waits until they can be bound."""
    metrics_url: str | None = None
    """Where Prometheus scrapes it (docs/observability.md); None: it serves no metrics."""
    waits_for: str = "its port to open"
    """What `ready` checks, in words: `make up` says it while it waits."""
    prepare: Callable[[], object] | None = None
    """Run by `make up` just before it starts the process (Envoy's config is written here)."""
    after_ready: Callable[[], object] | None = None
    """Run by `make up` once it answers, also when it was already running (PostgreSQL's
    databases are created here); must be idempotent."""
    user: str | None = None
    """The system user it runs as (PostgreSQL refuses root); None: whoever runs `make up`."""
    cwd: Path | None = None
    """Its working folder; None: the repository."""
    marker: str = ""
    """What its command line holds (`orders` for the instance named `orders-2`); the name when
    empty. A pid file only counts when the live process's command line has it."""

    @property
    def process_marker(self) -> str:
        return self.marker or self.name
