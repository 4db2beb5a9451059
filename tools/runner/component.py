"""One process of the local stack, as the stack starts, checks and stops it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


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
    marker: str = ""
    """What its command line holds (`orders` for the instance named `orders-2`); the name when
    empty. A pid file only counts when the live process's command line has it."""

    @property
    def process_marker(self) -> str:
        return self.marker or self.name
