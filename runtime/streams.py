"""The JetStream streams of Concord: those the catalogue lists (one for each context's events, a
work queue for the commands of the contexts that take them) and one for dead letters. Every
service ensures all of them at start, so start-up order does not matter."""

from __future__ import annotations

from nats.js.api import RetentionPolicy, StorageType, StreamConfig

from runtime import catalogue
from runtime.catalogue import Stream, StreamKind

DUPLICATE_WINDOW_S = 600.0  # covers an outbox relay restarted minutes after a crash
DEAD_LETTER_STREAM = "SHOP_DEAD_LETTERS"


RETENTION = {
    StreamKind.EVENTS: RetentionPolicy.LIMITS,
    StreamKind.COMMANDS: RetentionPolicy.WORK_QUEUE,
}


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


def stream_configs(replicas: int = 1) -> list[StreamConfig]:
    """Every stream at `replicas` copies (CONCORD_NATS_REPLICAS): on a cluster, an acknowledged
    publish is on a quorum of nodes, and losing one node loses nothing."""
    if replicas < 1:
        raise ValueError(f"CONCORD_NATS_REPLICAS={replicas} must be at least 1")
    configs = [
        StreamConfig(
            name=stream.name,
            subjects=list(stream.subjects),
            storage=StorageType.FILE,
            retention=RETENTION[stream.kind],
            duplicate_window=DUPLICATE_WINDOW_S,
            num_replicas=replicas,
        )
        for stream in catalogue.streams()
    ]
    configs.append(
        StreamConfig(
            name=DEAD_LETTER_STREAM,
            subjects=["shop.deadletter.>"],
            storage=StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
            num_replicas=replicas,
        )
    )
    return configs
