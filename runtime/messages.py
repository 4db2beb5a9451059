"""Events and commands on the wire: subjects, headers and decoding by type name.

Subjects follow the message's home: `shop.<context>.events.<Name>` for messages declared in a
context's events.proto, `shop.<context>.commands.<Name>` for commands.proto. The payload is the
serialized protobuf; headers carry `Nats-Msg-Id` (the event or command id, so JetStream drops
duplicates), the full type name, and a W3C `traceparent`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

HEADER_MSG_ID = "Nats-Msg-Id"
HEADER_TYPE = "Concord-Type"
HEADER_TRACEPARENT = "traceparent"
HEADER_REPLAY_OF = "Concord-Replay-Of"
"""On a replayed dead letter: the original message id, which inboxes record it by."""


class UndecodableMessageError(ValueError):
    pass


def message_kind(message: Message) -> str:
    """'events' or 'commands', from the file the message is declared in."""
    file_name = message.DESCRIPTOR.file.name
    if file_name.endswith("/events.proto"):
        return "events"
    if file_name.endswith("/commands.proto"):
        return "commands"
    raise ValueError(f"{message.DESCRIPTOR.full_name} is neither an event nor a command")


def subject_for(message: Message) -> str:
    full_name = message.DESCRIPTOR.full_name  # e.g. shop.inventory.v1.ReserveStock
    parts = full_name.split(".")
    if len(parts) != 4 or parts[0] != "shop":
        raise ValueError(f"{full_name} is not a shop.<context>.v1 message")
    return f"shop.{parts[1]}.{message_kind(message)}.{parts[3]}"


def message_id(message: Message) -> str:
    for field in ("event_id", "command_id"):
        value = getattr(message, field, "")
        if value:
            return str(value)
    raise ValueError(f"{message.DESCRIPTOR.full_name} has no event_id or command_id set")


def decode(type_name: str, payload: bytes) -> Message:
    """Decodes a payload by its full type name; the type's module must have been imported."""
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(type_name)
    except KeyError as exc:
        raise UndecodableMessageError(f"unknown message type {type_name!r}") from exc
    message = message_factory.GetMessageClass(descriptor)()
    try:
        message.ParseFromString(payload)
    except DecodeError as exc:
        raise UndecodableMessageError(f"payload is not a valid {type_name}: {exc}") from exc
    return message


AGGREGATE_FIELD = 2
"""Every event names its aggregate in field 2 (runtime/events.py), and every command the order
it serves (`order_id`)."""


def ordering_key(envelope: Envelope) -> str | None:
    """What a stream must keep in order for this message: its aggregate on its stream (the
    subject without the message name), e.g. `shop.orders.events/o-1`. Messages with different
    keys may be stored in either order; None when the payload names no aggregate, so the
    message keeps its place against every other."""
    try:
        message = decode(envelope.type_name, envelope.payload)
    except UndecodableMessageError:
        return None
    field = message.DESCRIPTOR.fields_by_number.get(AGGREGATE_FIELD)
    if field is None or field.type != field.TYPE_STRING:
        return None
    aggregate = getattr(message, field.name)
    if not aggregate:
        return None
    return f"{envelope.subject.rsplit('.', 1)[0]}/{aggregate}"


def new_traceparent(trace_id: str | None = None) -> str:
    return f"00-{trace_id or secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def trace_id_of(traceparent: str | None) -> str | None:
    if not traceparent:
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


@dataclass(frozen=True)
class Envelope:
    message_id: str
    subject: str
    type_name: str
    payload: bytes
    traceparent: str

    @classmethod
    def wrap(cls, message: Message, traceparent: str | None = None) -> Envelope:
        return cls(
            message_id=message_id(message),
            subject=subject_for(message),
            type_name=message.DESCRIPTOR.full_name,
            payload=message.SerializeToString(),
            traceparent=traceparent or new_traceparent(),
        )

    def headers(self) -> dict[str, str]:
        return {
            HEADER_MSG_ID: self.message_id,
            HEADER_TYPE: self.type_name,
            HEADER_TRACEPARENT: self.traceparent,
        }
