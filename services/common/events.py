"""Filling the fields every event carries, in one place."""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import Message

from services.common.ids import new_message_id, timestamp

E = TypeVar("E", bound=Message)


def stamped(event: E, at: float, **fields: object) -> E:
    """Sets a fresh event_id, occur_time = `at`, and the given fields (the aggregate id,
    version, causation_id)."""
    event.event_id = new_message_id()  # type: ignore[attr-defined]
    event.occur_time.CopyFrom(timestamp(at))  # type: ignore[attr-defined]
    for name, value in fields.items():
        setattr(event, name, value)
    return event
