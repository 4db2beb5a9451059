"""The JetStream streams of Concord: those the catalogue lists (one for each context's events, a
work queue for the commands of the contexts that take them) and one for dead letters. Every
service ensures all of them at start, so start-up order does not matter.

Every stream is bounded (`StreamLimits`, from settings; docs/platform.md, "Retention"):
- events: by age and size, discarding the oldest. The stream carries facts to consumers; the
  record of an order is orders' event store, so an event the stream let go is not lost.
- commands: by size only, refusing new ones when full (`discard: new`). A command is a step some
  saga waits for, or a compensation that must happen (release stock, void a payment): none may
  vanish unconsumed, so no `max_age`. A publish to a full queue fails, and the publisher's outbox
  keeps the row and retries it (backpressure), until the consumer catches up.
- dead letters: by age (the operator's window to replay), and by size refusing new ones, so a
  flood of poison messages does not erase older dead letters nobody has read yet (a refused
  dead letter stays on its stream, redelivered and failing, until the cause is fixed).
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from runtime import catalogue
from runtime.catalogue import Stream, StreamKind

DUPLICATE_WINDOW_S = 600.0
"""Default of `StreamLimits.duplicate_window_s`: covers an outbox relay restarted minutes after
a crash. nats-server keeps every message id of the window in memory (about 350 bytes each: at
1,000 messages a second, some 200 MiB), so its resident set grows for this long after a start
and is flat after."""
DEAD_LETTER_STREAM = "SHOP_DEAD_LETTERS"
DAY_S = 86_400.0
MIB = 1024 * 1024


RETENTION = {
    StreamKind.EVENTS: RetentionPolicy.LIMITS,
    StreamKind.COMMANDS: RetentionPolicy.WORK_QUEUE,
}


@dataclass(frozen=True)
class StreamLimits:
    """How much each kind of stream keeps. JetStream reserves every stream's `max_bytes` of its
    file store at creation, so their sum (3 event streams, 2 command queues, the dead letters:
    1,792 MiB by default) must fit in nats-server's `max_file_store` (2 GB as tools/runner
    configures it), or creating a stream fails with "insufficient storage resources"."""

    event_max_age_s: float = 7 * DAY_S
    event_max_bytes: int = 512 * MIB
    command_max_bytes: int = 64 * MIB
    dead_letter_max_age_s: float = 14 * DAY_S
    dead_letter_max_bytes: int = 128 * MIB
    duplicate_window_s: float = DUPLICATE_WINDOW_S
    """How long JetStream drops a republished message id (the relay's crash safety; the inbox
    is the guard beyond it)."""

    def __post_init__(self) -> None:
        if self.duplicate_window_s <= 0:
            raise ValueError("CONCORD_STREAM_DUPLICATE_WINDOW_S must be positive")
        # JetStream refuses a stream whose duplicate window is longer than its max_age.
        if min(self.event_max_age_s, self.dead_letter_max_age_s) <= self.duplicate_window_s:
            raise ValueError(
                "CONCORD_EVENT_STREAM_MAX_AGE_DAYS and CONCORD_DEAD_LETTER_RETENTION_DAYS must"
                f" exceed the {self.duplicate_window_s:.0f} s duplicate window"
                " (CONCORD_STREAM_DUPLICATE_WINDOW_S)"
            )
        if min(self.event_max_bytes, self.command_max_bytes, self.dead_letter_max_bytes) <= 0:
            raise ValueError(
                "CONCORD_EVENT_STREAM_MAX_MIB, CONCORD_COMMAND_STREAM_MAX_MIB and"
                " CONCORD_DEAD_LETTER_STREAM_MAX_MIB must be positive"
            )


def _owned(context: str, kind: StreamKind) -> Stream:
    """The catalogue's stream, so a consumer of a stream nobody owns fails at wiring time."""
    stream = Stream(context, kind)
    if stream not in catalogue.process(context).streams:
        raise KeyError(f"{context} has no {kind.value} stream in runtime/catalogue.py")
    return stream


def events_stream(context: str) -> str:
    return _owned(context, StreamKind.EVENTS).name


def commands_stream(context: str) -> str:
    return _owned(context, StreamKind.COMMANDS).name


def dead_letter_subject(service: str) -> str:
    return f"shop.deadletter.{service}"


def _bounds(kind: StreamKind, limits: StreamLimits) -> tuple[float | None, int, DiscardPolicy]:
    """(max_age, max_bytes, discard) of a catalogue stream."""
    if kind is StreamKind.EVENTS:
        return limits.event_max_age_s, limits.event_max_bytes, DiscardPolicy.OLD
    return None, limits.command_max_bytes, DiscardPolicy.NEW


def stream_configs(replicas: int = 1, limits: StreamLimits | None = None) -> list[StreamConfig]:
    """Every stream at `replicas` copies (CONCORD_NATS_REPLICAS): on a cluster, an acknowledged
    publish is on a quorum of nodes, and losing one node loses nothing."""
    if replicas < 1:
        raise ValueError(f"CONCORD_NATS_REPLICAS={replicas} must be at least 1")
    limits = limits or StreamLimits()
    configs = []
    for stream in catalogue.streams():
        max_age, max_bytes, discard = _bounds(stream.kind, limits)
        configs.append(
            StreamConfig(
                name=stream.name,
                subjects=list(stream.subjects),
                storage=StorageType.FILE,
                retention=RETENTION[stream.kind],
                duplicate_window=limits.duplicate_window_s,
                num_replicas=replicas,
                max_age=max_age,
                max_bytes=max_bytes,
                discard=discard,
            )
        )
    configs.append(
        StreamConfig(
            name=DEAD_LETTER_STREAM,
            subjects=["shop.deadletter.>"],
            storage=StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
            num_replicas=replicas,
            max_age=limits.dead_letter_max_age_s,
            max_bytes=limits.dead_letter_max_bytes,
            discard=DiscardPolicy.NEW,
        )
    )
    return configs
