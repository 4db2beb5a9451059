"""What every event carries, read and written in one place.

The contracts give every event its id (field 1), the id of the aggregate it belongs to (2, named
for the aggregate: `order_id`, `product_id`), the aggregate's version after it (3) and when it
happened (4). `metadata_of` reads them as one typed value by those numbers, so no caller needs to
know a field's name or reach for getattr; `tests/unit/test_event_metadata.py` holds every event
of every context to the convention.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TypeVar

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from runtime.ids import new_message_id, timestamp

E = TypeVar("E", bound=Message)
EVENT_ID, AGGREGATE_ID, VERSION, OCCUR_TIME = 1, 2, 3, 4


@dataclass(frozen=True)
class EventMetadata:
    event_id: str
    aggregate_id: str
    version: int
    occur_time: float
    """Seconds since the epoch."""


@dataclass(frozen=True)
class _MetadataFields:
    event_id: FieldDescriptor
    aggregate_id: FieldDescriptor
    version: FieldDescriptor
    occur_time: FieldDescriptor


@cache
def _fields(descriptor: Descriptor) -> _MetadataFields:
    by_number = descriptor.fields_by_number
    missing = {EVENT_ID, AGGREGATE_ID, VERSION, OCCUR_TIME} - set(by_number)
    if missing:
        raise TypeError(f"{descriptor.full_name} is not an event: no fields {sorted(missing)}")
    return _MetadataFields(
        by_number[EVENT_ID], by_number[AGGREGATE_ID], by_number[VERSION], by_number[OCCUR_TIME]
    )


def metadata_of(event: Message) -> EventMetadata:
    fields = _fields(event.DESCRIPTOR)
    occur_time: Timestamp = getattr(event, fields.occur_time.name)
    return EventMetadata(
        event_id=str(getattr(event, fields.event_id.name)),
        aggregate_id=str(getattr(event, fields.aggregate_id.name)),
        version=int(getattr(event, fields.version.name)),
        occur_time=occur_time.ToNanoseconds() / 1e9,
    )


def stamped(event: E, at: float, aggregate_id: str, version: int, **fields: object) -> E:
    """Sets a fresh event id, occur_time = `at`, the aggregate id and version, and any other
    given fields (a causation_id, say)."""
    meta = _fields(event.DESCRIPTOR)
    setattr(event, meta.event_id.name, new_message_id())
    getattr(event, meta.occur_time.name).CopyFrom(timestamp(at))
    setattr(event, meta.aggregate_id.name, aggregate_id)
    setattr(event, meta.version.name, version)
    for name, value in fields.items():
        setattr(event, name, value)
    return event
