"""Finds saga steps past their deadline and times them out: how an order whose reply never
comes still ends REJECTED instead of PENDING forever."""

from __future__ import annotations

import asyncio
from functools import partial

from services.common.database import Database
from services.common.ids import now
from services.common.logs import get_logger
from services.orders import store
from services.orders.application import Orders

log = get_logger(__name__)


async def watch_saga_deadlines(db: Database, orders: Orders, poll_interval_s: float) -> None:
    while True:
        await asyncio.sleep(poll_interval_s)
        overdue = await db.read(lambda conn: store.overdue_sagas(conn, now()))
        for saga in overdue:
            await db.write(partial(orders.time_out, order_id=saga.order_id))
