"""Every event of every context carries its metadata where `metadata_of` reads it."""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.protobuf.timestamp_pb2 import Timestamp
from shop.inventory.v1 import events_pb2 as inventory_events
from shop.orders.v1 import events_pb2 as order_events
from shop.payments.v1 import events_pb2 as payment_events

from runtime.events import (
    AGGREGATE_ID,
    EVENT_ID,
    OCCUR_TIME,
    VERSION,
    metadata_of,
    stamped,
)

MODULES = (order_events, inventory_events, payment_events)
EVENTS = [
    descriptor
    for module in MODULES
    for descriptor in module.DESCRIPTOR.message_types_by_name.values()
    if descriptor.name != "OrderEvent"  # the oneof that wraps an order's events for the API
]


@pytest.mark.parametrize("descriptor", EVENTS, ids=lambda d: d.full_name)
def test_every_event_numbers_its_metadata_by_the_convention(descriptor: object) -> None:
    fields = descriptor.fields_by_number  # type: ignore[attr-defined]
    assert fields[EVENT_ID].type == FieldDescriptor.TYPE_STRING
    assert fields[EVENT_ID].name == "event_id"
    assert fields[AGGREGATE_ID].type == FieldDescriptor.TYPE_STRING
    assert fields[AGGREGATE_ID].name.endswith("_id")
    assert fields[VERSION].name == "version"
    assert fields[OCCUR_TIME].message_type.full_name == "google.protobuf.Timestamp"


def test_stamped_metadata_reads_back() -> None:
    event: Message = GetMessageClass(inventory_events.StockAdjusted.DESCRIPTOR)()
    stamped(event, 1_700_000_000.5, "prd_1", 7)
    meta = metadata_of(event)
    assert (meta.aggregate_id, meta.version, meta.occur_time) == ("prd_1", 7, 1_700_000_000.5)
    assert meta.event_id


def test_a_message_that_is_no_event_is_refused() -> None:
    with pytest.raises(TypeError, match="not an event"):
        metadata_of(Timestamp(seconds=1))
