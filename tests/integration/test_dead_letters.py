"""Poison messages: undecodable, of an unknown type, or without an id go to the dead-letter
subject with the reason, are counted, and do not block the messages behind them."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import grpc
from concord.ops.v1 import ops_service_pb2, ops_service_pb2_grpc
from nats.aio.client import Client
from shop.inventory.v1 import commands_pb2, events_pb2

from runtime.messages import HEADER_MSG_ID, HEADER_TYPE
from tests.support.bus import StreamWatcher, send
from tests.support.grpc_client import CALL_TIMEOUT_S as T
from tests.support.processes import ServiceRunner

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
