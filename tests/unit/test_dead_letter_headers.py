"""What a dead letter carries, and which id the inbox knows a message by: the rules that keep a
replayed dead letter exactly-once (runtime/dead_letters.py), with no bus."""

from __future__ import annotations

from shop.inventory.v1 import commands_pb2

from runtime.dead_letters import (
    HEADER_CONSUMER,
    HEADER_FIRST_FAILURE,
    HEADER_ORIGINAL_MSG_ID,
    HEADER_ORIGINAL_SUBJECT,
    HEADER_REASON,
    dead_letter_headers,
    inbox_id,
    letter_from,
)
from runtime.messages import HEADER_MSG_ID, HEADER_REPLAY_OF, HEADER_TRACEPARENT, HEADER_TYPE

RESERVE = commands_pb2.ReserveStock.DESCRIPTOR.full_name
TRACE = "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"


def test_a_replay_is_known_to_the_inbox_by_its_original_id() -> None:
    assert inbox_id({HEADER_MSG_ID: "cmd-1"}) == "cmd-1"
    assert inbox_id({HEADER_MSG_ID: "cmd-1:replay:7", HEADER_REPLAY_OF: "cmd-1"}) == "cmd-1"
    assert inbox_id({}) == ""


def test_dead_letter_keeps_type_and_trace_and_moves_the_message_id_aside() -> None:
    headers = dead_letter_headers(
        {HEADER_MSG_ID: "cmd-1", HEADER_TYPE: RESERVE, HEADER_TRACEPARENT: TRACE},
        "x" * 2000,
        "shop.inventory.commands.ReserveStock",
        "inventory-commands",
        1700000000.5,
    )
    assert HEADER_MSG_ID not in headers  # the dead-letter stream keeps every copy
    assert (headers[HEADER_TYPE], headers[HEADER_TRACEPARENT]) == (RESERVE, TRACE)
    assert headers[HEADER_ORIGINAL_MSG_ID] == "cmd-1"
    assert headers[HEADER_ORIGINAL_SUBJECT] == "shop.inventory.commands.ReserveStock"
    assert headers[HEADER_CONSUMER] == "inventory-commands"
    assert float(headers[HEADER_FIRST_FAILURE]) == 1700000000.5
    assert len(headers[HEADER_REASON]) == 1000


def test_a_replay_that_fails_again_is_dead_lettered_under_its_original_id() -> None:
    headers = dead_letter_headers(
        {HEADER_MSG_ID: "cmd-1:replay:7", HEADER_REPLAY_OF: "cmd-1", HEADER_TYPE: RESERVE},
        "again",
        "shop.inventory.commands.ReserveStock",
        "inventory-commands",
        1.0,
    )
    assert headers[HEADER_ORIGINAL_MSG_ID] == "cmd-1"
    assert HEADER_REPLAY_OF not in headers


def test_listed_payload_is_decoded_as_json_or_says_why_not() -> None:
    payload = commands_pb2.ReserveStock(command_id="cmd-1", order_id="ord_1").SerializeToString()
    good = letter_from(3, 2.0, payload, {HEADER_TYPE: RESERVE, HEADER_FIRST_FAILURE: "1.5"})
    assert (good.payload_json, good.decode_error) == (
        '{"commandId": "cmd-1", "orderId": "ord_1"}',
        "",
    )
    assert (good.first_failure_time, good.dead_letter_time) == (1.5, 2.0)
    bad = letter_from(4, 2.0, b"\xff\xfe", {HEADER_TYPE: RESERVE})
    assert (
        bad.payload_json == "" and "not a valid shop.inventory.v1.ReserveStock" in bad.decode_error
    )
    assert bad.first_failure_time == 2.0  # no header: the dead-lettering time
    unknown = letter_from(5, 2.0, b"", {HEADER_TYPE: "shop.inventory.v1.Nonsense"})
    assert "unknown message type" in unknown.decode_error
