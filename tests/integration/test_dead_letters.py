"""Poison messages: undecodable, of an unknown type, or without an id go to the dead-letter
subject with the reason, are counted, and do not block the messages behind them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

import grpc
import pytest
from concord.ops.v1 import ops_service_pb2, ops_service_pb2_grpc
from nats.aio.client import Client
from shop.inventory.v1 import commands_pb2, events_pb2

from runtime.messages import HEADER_MSG_ID, HEADER_REPLAY_OF, HEADER_TYPE
from tests.support.bus import StreamWatcher, send
from tests.support.grpc_client import CALL_TIMEOUT_S as T
from tests.support.processes import ServiceRunner

pytestmark = pytest.mark.usefixtures("storage")
"""Every test on SQLite and on PostgreSQL (the services' CONCORD_<SERVICE>_DATABASE_URL)."""

SUBJECT = "shop.inventory.commands.ReserveStock"
RESERVE = commands_pb2.ReserveStock.DESCRIPTOR.full_name


async def dead_letters(nc: Client, count: int) -> list[dict[str, str]]:
    js = nc.jetstream()
    psub = await js.pull_subscribe(
        "shop.deadletter.inventory", durable=None, stream="SHOP_DEAD_LETTERS"
    )
    found: list[dict[str, str]] = []
    for _ in range(100):
        with contextlib.suppress(TimeoutError):
            found += [dict(m.headers or {}) for m in await psub.fetch(10, timeout=0.3)]
        if len(found) >= count:
            return found
    raise AssertionError(f"expected {count} dead letters, got {found}")


async def test_poison_messages_are_dead_lettered_and_the_queue_moves_on(
    services: ServiceRunner, nats_client: Client
) -> None:
    inventory = services.start("inventory")
    js = nats_client.jetstream()
    await js.publish(
        SUBJECT,
        b"\xff\xfe not protobuf",
        headers={HEADER_MSG_ID: str(uuid.uuid4()), HEADER_TYPE: RESERVE},
    )
    await js.publish(
        SUBJECT,
        b"",
        headers={HEADER_MSG_ID: str(uuid.uuid4()), HEADER_TYPE: "shop.inventory.v1.Nonsense"},
    )
    await js.publish(
        SUBJECT,
        commands_pb2.ReserveStock(order_id="x").SerializeToString(),
        headers={HEADER_TYPE: RESERVE},
    )

    reasons = sorted(h["Concord-Dead-Letter-Reason"] for h in await dead_letters(nats_client, 3))
    assert any("not a valid shop.inventory.v1.ReserveStock" in r for r in reasons)
    assert any("no handler for message type 'shop.inventory.v1.Nonsense'" in r for r in reasons)
    assert any("no Nats-Msg-Id header" in r for r in reasons)

    watcher = StreamWatcher(nats_client, "SHOP_INVENTORY_EVENTS")
    await send(
        nats_client, commands_pb2.ReserveStock(command_id=str(uuid.uuid4()), order_id="ord_after")
    )
    await watcher.wait_for(events_pb2.StockUnavailable, "ord_after")  # the queue moved on

    async with grpc.aio.insecure_channel(inventory.address) as channel:
        stub = ops_service_pb2_grpc.OperationsServiceStub(channel)
        for _ in range(100):
            reply = await stub.GetDiagnostics(ops_service_pb2.GetDiagnosticsRequest(), timeout=T)
            commands = next(c for c in reply.consumers if c.durable == "inventory-commands")
            if commands.processed >= 1:
                break
            await asyncio.sleep(0.05)
    assert commands.dead_lettered == 3


async def test_a_handler_that_keeps_failing_is_dead_lettered_after_max_deliver(
    services: ServiceRunner, nats_client: Client
) -> None:
    services.start(
        "inventory",
        env={
            "CONCORD_FAIL_AT": "consumer.handler:shop.inventory.v1.ReleaseStock",
            "CONCORD_CONSUMER_MAX_DELIVER": "3",
        },
    )
    await send(
        nats_client, commands_pb2.ReleaseStock(command_id=str(uuid.uuid4()), order_id="ord_doomed")
    )
    [letter] = await dead_letters(nats_client, 1)
    assert "failed 3 times" in letter["Concord-Dead-Letter-Reason"]
    assert "injected failure" in letter["Concord-Dead-Letter-Reason"]
    assert letter["Concord-Original-Subject"] == "shop.inventory.commands.ReleaseStock"


async def listed(stub: ops_service_pb2_grpc.OperationsServiceStub, count: int) -> list[Any]:
    """Waits until ListDeadLetters returns `count` dead letters."""
    for _ in range(200):
        reply = await stub.ListDeadLetters(ops_service_pb2.ListDeadLettersRequest(), timeout=T)
        if len(reply.dead_letters) >= count:
            return list(reply.dead_letters)
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} dead letters listed, got {reply.dead_letters}")


async def test_dead_letter_is_listed_decoded_and_replayed_once_its_cause_is_fixed(
    services: ServiceRunner, nats_client: Client
) -> None:
    inventory = services.start(
        "inventory",
        env={
            "CONCORD_FAIL_AT": "consumer.handler:shop.inventory.v1.ReleaseStock",
            "CONCORD_CONSUMER_MAX_DELIVER": "2",
        },
    )
    command_id = str(uuid.uuid4())
    await send(
        nats_client,
        commands_pb2.ReleaseStock(command_id=command_id, order_id="ord_replayed", reason="why"),
    )
    async with grpc.aio.insecure_channel(inventory.address) as channel:
        stub = ops_service_pb2_grpc.OperationsServiceStub(channel)
        [letter] = await listed(stub, 1)
    assert (letter.subject, letter.type_name, letter.message_id) == (
        "shop.inventory.commands.ReleaseStock",
        "shop.inventory.v1.ReleaseStock",
        command_id,
    )
    assert letter.consumer == "inventory-commands"
    assert "failed 2 times" in letter.reason and "injected failure" in letter.reason
    assert json.loads(letter.payload_json) == {
        "commandId": command_id,
        "orderId": "ord_replayed",
        "reason": "why",
    }
    assert letter.first_failure_time.ToNanoseconds() <= letter.dead_letter_time.ToNanoseconds()

    inventory = services.restart("inventory")  # the cause is fixed
    watcher = StreamWatcher(nats_client, "SHOP_INVENTORY_EVENTS")
    async with grpc.aio.insecure_channel(inventory.address) as channel:
        stub = ops_service_pb2_grpc.OperationsServiceStub(channel)
        reply = await stub.ReplayDeadLetter(
            ops_service_pb2.ReplayDeadLetterRequest(sequence=letter.sequence), timeout=T
        )
        assert reply.replay_message_id == f"{command_id}:replay:{letter.sequence}"
        [released] = await watcher.wait_for(events_pb2.StockReleased, "ord_replayed")
        assert released.causation_id == command_id
        assert list(await listed(stub, 0)) == []  # replayed: no longer a dead letter
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await stub.ReplayDeadLetter(
                ops_service_pb2.ReplayDeadLetterRequest(sequence=letter.sequence), timeout=T
            )
        assert gone.value.code() is grpc.StatusCode.NOT_FOUND

        # Replayed once more (say, by a second operator): the inbox knows the original id.
        await nats_client.jetstream().publish(
            letter.subject,
            commands_pb2.ReleaseStock(
                command_id=command_id, order_id="ord_replayed", reason="why"
            ).SerializeToString(),
            headers={
                HEADER_MSG_ID: str(uuid.uuid4()),
                HEADER_REPLAY_OF: command_id,
                HEADER_TYPE: letter.type_name,
            },
        )
        for _ in range(100):
            diagnostics = await stub.GetDiagnostics(
                ops_service_pb2.GetDiagnosticsRequest(), timeout=T
            )
            commands = next(c for c in diagnostics.consumers if c.durable == "inventory-commands")
            if commands.duplicates >= 1:
                break
            await asyncio.sleep(0.05)
        assert commands.duplicates == 1
        await watcher.poll()
        assert len(watcher.of_type(events_pb2.StockReleased)) == 1  # processed exactly once


async def test_a_dead_letter_without_a_message_id_cannot_be_replayed(
    services: ServiceRunner, nats_client: Client
) -> None:
    inventory = services.start("inventory")
    await nats_client.jetstream().publish(
        SUBJECT,
        commands_pb2.ReserveStock(order_id="x").SerializeToString(),
        headers={HEADER_TYPE: RESERVE},
    )
    async with grpc.aio.insecure_channel(inventory.address) as channel:
        stub = ops_service_pb2_grpc.OperationsServiceStub(channel)
        [letter] = await listed(stub, 1)
        assert letter.message_id == "" and "no Nats-Msg-Id header" in letter.reason
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ReplayDeadLetter(
                ops_service_pb2.ReplayDeadLetterRequest(sequence=letter.sequence), timeout=T
            )
        assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "exactly-once" in (refused.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stub.ListDeadLetters(
                ops_service_pb2.ListDeadLettersRequest(page_token="nonsense"), timeout=T
            )
        assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
