"""The outbox relay's window on a real nats-server: many publishes in flight keep the stream in
outbox order, a publish that fails mid-window leaves exactly the rows after the acknowledged
prefix unsent, and republishing rows JetStream already stored adds nothing to the stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.js.errors import NoStreamResponseError
from shop.inventory.v1 import commands_pb2 as inventory_commands
from shop.payments.v1 import commands_pb2 as payments_commands

from runtime import outbox
from runtime.bus import Bus
from runtime.database import Connection
from runtime.outbox import OutboxRelay
from runtime.sqlite_database import SqliteDatabase
from runtime.streams import commands_stream
from tools.runner.nats import NatsServer

WINDOW = 64


@dataclass
class Outbox:
    bus: Bus
    db: SqliteDatabase

    def relay(self, window: int = WINDOW) -> OutboxRelay:
        return OutboxRelay(
            self.db, self.bus, poll_interval_s=60.0, batch_size=1000, publish_window=window
        )

    async def stage_releases(self, order_ids: list[str], tag: str) -> None:
        """One ReleaseStock command per order id, in this order, each its own transaction."""
        for n, order_id in enumerate(order_ids):
            command = inventory_commands.ReleaseStock(
                command_id=f"{tag}-{n}", order_id=order_id, reason=f"{tag}-{n}"
            )
            await self.db.write(partial(outbox.stage, message=command))

    async def pending(self) -> int:
        return await self.db.read(outbox.pending_count)


@pytest.fixture
async def staged(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[Outbox]:
    bus = Bus([nats_server.url], "outbox-window-test", 5.0)
    await bus.connect()
    db = SqliteDatabase(tmp_path / "orders.sqlite3")
    await db.open({"outbox": outbox.MIGRATIONS})
    try:
        await bus.ensure_streams()
        yield Outbox(bus, db)
    finally:
        await bus.close()
        await db.close()


async def stored_reasons(nats_client: Client, stream: str) -> list[str]:
    """Every ReleaseStock the stream holds, in the stream's order (read by sequence: a work
    queue allows no second consumer)."""
    js = nats_client.jetstream()
    state = (await js.stream_info(stream)).state
    reasons = []
    for seq in range(state.first_seq, state.last_seq + 1):
        stored = await js.get_msg(stream, seq)
        reasons.append(inventory_commands.ReleaseStock.FromString(stored.data or b"").reason)
    return reasons


async def test_a_window_of_publishes_keeps_outbox_order(
    staged: Outbox, nats_client: Client
) -> None:
    orders = [f"ord-{n % 7}" for n in range(300)]  # seven orders' commands interleaved
    await staged.stage_releases(orders, "r")

    assert await staged.relay().publish_pending() == 300

    reasons = await stored_reasons(nats_client, commands_stream("inventory"))
    assert reasons == [f"r-{n}" for n in range(300)]
    assert await staged.pending() == 0


async def test_a_failed_publish_mid_window_marks_only_the_acknowledged_prefix(
    staged: Outbox, nats_client: Client
) -> None:
    """The payments queue is gone: its command fails (no stream answers) while the inventory
    commands sent after it in the same window are stored. Only the rows before the failure are
    marked sent; the next round republishes the rest, and the stream drops those it holds."""
    js = nats_client.jetstream()
    await js.delete_stream(commands_stream("payments"))
    await staged.stage_releases(["ord-a", "ord-b", "ord-c"], "before")
    void = payments_commands.VoidPayment(command_id="void-1", order_id="ord-v")
    await staged.db.write(partial(outbox.stage, message=void))
    await staged.stage_releases(["ord-d", "ord-e", "ord-f"], "after")
    relay = staged.relay()

    with pytest.raises(NoStreamResponseError):
        await relay.publish_pending()
    assert await staged.pending() == 4  # the failed command and the three behind it
    inventory = commands_stream("inventory")
    assert (await js.stream_info(inventory)).state.messages == 6  # all sent, the tail unmarked

    await staged.bus.ensure_streams()  # the payments queue is back
    assert await relay.publish_pending() == 4
    assert await staged.pending() == 0
    assert (await js.stream_info(inventory)).state.messages == 6  # republished, not doubled
    assert (await js.stream_info(commands_stream("payments"))).state.messages == 1


async def test_rows_republished_after_a_crash_are_not_doubled(
    staged: Outbox, nats_client: Client
) -> None:
    """As after a crash between the acks and marking the rows sent."""
    await staged.stage_releases([f"ord-{n % 3}" for n in range(100)], "r")
    relay = staged.relay()
    assert await relay.publish_pending() == 100

    def forget_sent(conn: Connection) -> None:
        conn.execute("UPDATE outbox SET sent_at = NULL")

    await staged.db.write(forget_sent)
    assert await relay.publish_pending() == 100

    reasons = await stored_reasons(nats_client, commands_stream("inventory"))
    assert reasons == [f"r-{n}" for n in range(100)]


async def test_a_window_of_one_publishes_as_before(staged: Outbox, nats_client: Client) -> None:
    await staged.stage_releases([f"ord-{n % 3}" for n in range(20)], "r")
    assert await staged.relay(window=1).publish_pending() == 20
    reasons = await stored_reasons(nats_client, commands_stream("inventory"))
    assert reasons == [f"r-{n}" for n in range(20)]
