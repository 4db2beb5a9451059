"""Knowing when an order is done without asking: its OrderConfirmed (or OrderRejected) seen on
the orders events stream through a core NATS subscription. Polling with GetOrder would cost
the very CPU a figure measures (and add spans to the tracing figure), so every saga figure
counts completions this way.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
from nats.aio.msg import Msg
from shop.orders.v1 import events_pb2 as ev

from runtime.events import metadata_of
from tests.support.shop import Shop

CONFIRMED_SUBJECT = "shop.orders.events.OrderConfirmed"
REJECTED_SUBJECT = "shop.orders.events.OrderRejected"
SETTLE_TIMEOUT_S = 60.0


class Completions:
    """Futures for orders in flight, resolved from the events stream."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[str]] = {}
        self.early: dict[str, str] = {}

    def expect(self, order_id: str) -> asyncio.Future[str]:
        future = asyncio.get_running_loop().create_future()
        if order_id in self.early:
            future.set_result(self.early.pop(order_id))
        else:
            self.waiting[order_id] = future
        return future

    async def on_event(self, msg: Msg) -> None:
        kind = msg.subject.rsplit(".", 1)[1]
        event = ev.OrderConfirmed() if kind == "OrderConfirmed" else ev.OrderRejected()
        event.ParseFromString(msg.data)
        order_id = metadata_of(event).aggregate_id
        future = self.waiting.pop(order_id, None)
        if future is None:
            self.early[order_id] = kind
        elif not future.done():
            future.set_result(kind)


@asynccontextmanager
async def watching(nats_url: str) -> AsyncIterator[Completions]:
    """Completions of the orders placed meanwhile on the stack behind `nats_url`."""
    nc = await nats.connect(nats_url)
    completions = Completions()
    try:
        for subject in (CONFIRMED_SUBJECT, REJECTED_SUBJECT):
            await nc.subscribe(subject, cb=completions.on_event)
        yield completions
    finally:
        await nc.close()


async def place_confirmed(
    shop: Shop, product: str, customer: str, completions: Completions
) -> None:
    """Places one order of one `product` and returns once it is CONFIRMED; a rejection means
    the bench gave too little stock or credit, so it fails the figure."""
    placed = await shop.place(customer, [(product, 1)], key=uuid.uuid4().hex)
    outcome = await asyncio.wait_for(completions.expect(placed.order_id), SETTLE_TIMEOUT_S)
    if outcome != "OrderConfirmed":
        raise AssertionError(f"order {placed.order_id} {outcome}: stock or credit too small")
