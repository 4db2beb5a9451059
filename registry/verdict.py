"""What a compatibility check finds, channel by channel (docs/contracts.md, "Channels")."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Channel(enum.Enum):
    GRPC = "grpc"
    """gRPC calls: binary wire compatibility (buf's WIRE rules)."""
    REST = "rest"
    """REST through the gateway: JSON names (buf's WIRE_JSON rules) and google.api.http rules."""
    EVENTS = "events"
    """Events and commands on JetStream: replayed forever, so their types may only grow."""


@dataclass(frozen=True)
class Finding:
    channel: Channel
    file: str
    line: int
    """1-based, in the proposed sources; 0 when the proposed set no longer declares it."""
    rule: str
    message: str
    element: str | None = None
    """The full name of the message, service or method it breaks, when known."""
    consumers: tuple[str, ...] = ()
    """The catalogue's processes that consume that element."""

    def __str__(self) -> str:
        consumers = f" (breaks {', '.join(self.consumers)})" if self.consumers else ""
        return f"{self.channel.value} {self.file}:{self.line} {self.rule} {self.message}{consumers}"


@dataclass(frozen=True)
class ChannelVerdict:
    channel: Channel
    findings: tuple[Finding, ...]

    @property
    def compatible(self) -> bool:
        return not self.findings


@dataclass(frozen=True)
class Verdict:
    channels: tuple[ChannelVerdict, ...]
    """One per channel, in Channel order, compatible or not."""

    @classmethod
    def clean(cls) -> Verdict:
        """Nothing to break: every channel compatible (nothing published yet)."""
        return cls(tuple(ChannelVerdict(channel, ()) for channel in Channel))

    @property
    def compatible(self) -> bool:
        return all(c.compatible for c in self.channels)

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for c in self.channels for f in c.findings)

    @property
    def broken_consumers(self) -> tuple[str, ...]:
        return tuple(sorted({name for f in self.findings for name in f.consumers}))
