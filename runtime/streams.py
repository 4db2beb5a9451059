"""The JetStream streams of Concord: one for each context's events, a work queue for each
context's commands, and one for dead letters. Every service ensures all of them at start, so
start-up order does not matter."""

from __future__ import annotations

from nats.js.api import RetentionPolicy, StorageType, StreamConfig

CONTEXTS = ("orders", "inventory", "payments")
COMMAND_CONTEXTS = ("inventory", "payments")
DUPLICATE_WINDOW_S = 600.0  # covers an outbox relay restarted minutes after a crash
DEAD_LETTER_STREAM = "SHOP_DEAD_LETTERS"


def events_stream(context: str) -> str:
    return f"SHOP_{context.upper()}_EVENTS"


def commands_stream(context: str) -> str:
    return f"SHOP_{context.upper()}_COMMANDS"


def dead_letter_subject(service: str) -> str:
    return f"shop.deadletter.{service}"


def stream_configs() -> list[StreamConfig]:
    configs = [
        StreamConfig(
            name=events_stream(context),
            subjects=[f"shop.{context}.events.>"],
            storage=StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
            duplicate_window=DUPLICATE_WINDOW_S,
        )
        for context in CONTEXTS
    ]
    configs += [
        StreamConfig(
            name=commands_stream(context),
            subjects=[f"shop.{context}.commands.>"],
            storage=StorageType.FILE,
            retention=RetentionPolicy.WORK_QUEUE,
            duplicate_window=DUPLICATE_WINDOW_S,
        )
        for context in COMMAND_CONTEXTS
    ]
    configs.append(
        StreamConfig(
            name=DEAD_LETTER_STREAM,
            subjects=["shop.deadletter.>"],
            storage=StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
        )
    )
    return configs
