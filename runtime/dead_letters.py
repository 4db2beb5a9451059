"""Dead letters for operators: what a service's consumers gave up on, read back from its
dead-letter subject, and replayed to the original subject once the cause is fixed.

A dead letter keeps the original payload and headers, minus `Nats-Msg-Id` (the dead-letter
stream must keep every copy), plus why and where it came from (the `Concord-*` headers below,
written by runtime/consumer.py). A replay is published with a new `Nats-Msg-Id` (JetStream drops
an id it saw within the stream's duplicate window) and `Concord-Replay-Of` carrying the original
id, which the consumers' inboxes use instead: a message some consumer already processed stays
processed once.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from google.protobuf.json_format import MessageToJson
from nats.js.errors import NotFoundError as StreamMessageNotFoundError

from runtime.bus import Bus
from runtime.errors import (
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
)
from runtime.messages import HEADER_MSG_ID, HEADER_REPLAY_OF, HEADER_TYPE, decode
from runtime.streams import DEAD_LETTER_STREAM, dead_letter_subject

HEADER_REASON = "Concord-Dead-Letter-Reason"
HEADER_ORIGINAL_SUBJECT = "Concord-Original-Subject"
HEADER_ORIGINAL_MSG_ID = "Concord-Original-Msg-Id"
HEADER_CONSUMER = "Concord-Consumer"
HEADER_FIRST_FAILURE = "Concord-First-Failure"
"""Epoch seconds of the consumer's first failure on the message."""
DEAD_LETTER_HEADERS = (
    HEADER_REASON,
    HEADER_ORIGINAL_SUBJECT,
    HEADER_ORIGINAL_MSG_ID,
    HEADER_CONSUMER,
    HEADER_FIRST_FAILURE,
)


@dataclass(frozen=True)
class DeadLetter:
    sequence: int
    subject: str
    type_name: str
    reason: str
    consumer: str
    message_id: str
    first_failure_time: float
    dead_letter_time: float
    payload_json: str
    decode_error: str
    payload: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class DeadLetterPage:
    dead_letters: list[DeadLetter]
    next_page_token: str


def dead_letter_headers(
    headers: dict[str, str], reason: str, subject: str, consumer: str, first_failure: float
) -> dict[str, str]:
    """The headers a dead letter is published with: the original ones without its message id
    (kept as Concord-Original-Msg-Id, the inbox's id for it), plus why and where from."""
    result = {k: v for k, v in headers.items() if k not in (HEADER_MSG_ID, HEADER_REPLAY_OF)}
    result.update(
        {
            HEADER_REASON: reason[:1000],
            HEADER_ORIGINAL_SUBJECT: subject,
            HEADER_ORIGINAL_MSG_ID: inbox_id(headers),
            HEADER_CONSUMER: consumer,
            HEADER_FIRST_FAILURE: f"{first_failure:.6f}",
        }
    )
    return result


def inbox_id(headers: dict[str, str]) -> str:
    """The id the inbox records a message by: the original id for a replay."""
    return headers.get(HEADER_REPLAY_OF) or headers.get(HEADER_MSG_ID, "")


def _decoded(type_name: str, payload: bytes) -> tuple[str, str]:
    """(payload as JSON, why it could not be decoded)."""
    try:
        return MessageToJson(decode(type_name, payload), indent=None), ""
    except Exception as exc:  # an unknown type or a broken payload is why it is here
        return "", str(exc)


def letter_from(sequence: int, at: float, payload: bytes, headers: dict[str, str]) -> DeadLetter:
    """A dead letter as read off the stream at sequence `sequence`, dead-lettered at `at`."""
    type_name = headers.get(HEADER_TYPE, "")
    payload_json, decode_error = _decoded(type_name, payload)
    first_failure = at
    with contextlib.suppress(ValueError):
        first_failure = float(headers.get(HEADER_FIRST_FAILURE, ""))
    return DeadLetter(
        sequence=sequence,
        subject=headers.get(HEADER_ORIGINAL_SUBJECT, ""),
        type_name=type_name,
        reason=headers.get(HEADER_REASON, ""),
        consumer=headers.get(HEADER_CONSUMER, ""),
        message_id=headers.get(HEADER_ORIGINAL_MSG_ID, ""),
        first_failure_time=first_failure,
        dead_letter_time=at,
        payload_json=payload_json,
        decode_error=decode_error,
        payload=payload,
        headers=headers,
    )


class DeadLetters:
    """One service's dead letters, on `shop.deadletter.<service>` in the dead-letter stream."""

    def __init__(self, bus: Bus, service: str) -> None:
        self._bus = bus
        self._subject = dead_letter_subject(service)

    async def _next(self, from_sequence: int) -> DeadLetter | None:
        try:
            raw = await self._bus.js.get_msg(
                DEAD_LETTER_STREAM, seq=from_sequence, subject=self._subject, next=True
            )
        except StreamMessageNotFoundError:
            return None
        at = raw.time.timestamp() if raw.time else time.time()
        return letter_from(raw.seq or 0, at, raw.data or b"", dict(raw.headers or {}))

    async def list(self, page_size: int, page_token: str) -> DeadLetterPage:
        if page_token and not page_token.isdigit():
            raise InvalidArgumentError(
                [FieldViolation("page_token", "is not a token ListDeadLetters returned")]
            )
        sequence = int(page_token or "1")
        found: list[DeadLetter] = []
        while len(found) <= page_size:
            letter = await self._next(sequence)
            if letter is None:
                break
            found.append(letter)
            sequence = letter.sequence + 1
        if len(found) > page_size:
            return DeadLetterPage(found[:page_size], str(found[page_size].sequence))
        return DeadLetterPage(found, "")

    async def get(self, sequence: int) -> DeadLetter:
        letter = await self._next(sequence)
        if letter is None or letter.sequence != sequence:
            raise NotFoundError("dead letter", str(sequence))
        return letter

    async def replay(self, sequence: int) -> tuple[DeadLetter, str]:
        """Publishes the dead letter to its original subject, then removes it; returns it and
        the message id it was published with."""
        letter = await self.get(sequence)
        if not letter.message_id:
            raise FailedPreconditionError(
                "DEAD_LETTER_HAS_NO_MESSAGE_ID",
                f"dead letter {sequence} had no {HEADER_MSG_ID}: no inbox could keep a replay "
                "of it exactly-once; publish a corrected message instead",
            )
        if not letter.subject:
            raise FailedPreconditionError(
                "DEAD_LETTER_HAS_NO_SUBJECT", f"dead letter {sequence} names no original subject"
            )
        replay_id = f"{letter.message_id}:replay:{sequence}"
        headers = {k: v for k, v in letter.headers.items() if k not in DEAD_LETTER_HEADERS}
        headers.update({HEADER_MSG_ID: replay_id, HEADER_REPLAY_OF: letter.message_id})
        await self._bus.js.publish(letter.subject, letter.payload, headers=headers)
        await self._bus.js.delete_msg(DEAD_LETTER_STREAM, sequence)
        return letter, replay_id
