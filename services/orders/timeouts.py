"""Finds saga steps past their deadline and times them out: how an order whose reply never
comes still ends REJECTED instead of PENDING forever.

Cancellation is a choreography with no coordinator to time it out; an order still CANCELLING
after `cancellation_alert_s` means inventory or payments did not react (a dead-lettered event,
a service down for long), and is reported once as an error for an operator to look at.
"""

from __future__ import annotations

import asyncio
from functools import partial

from runtime.database import Database
from runtime.ids import now
from runtime.logs import get_logger
from services.orders import store
from services.orders.application import Orders

log = get_logger(__name__)


async def watch_saga_deadlines(
    db: Database, orders: Orders, poll_interval_s: float, cancellation_alert_s: float
) -> None:
    reported: set[str] = set()
    while True:
        await asyncio.sleep(poll_interval_s)
        overdue = await db.read(lambda conn: store.overdue_sagas(conn, now()))
        for saga in overdue:
            await db.write(partial(orders.time_out, order_id=saga.order_id))
        stuck = await db.read(
            partial(store.stuck_cancellations, updated_before=now() - cancellation_alert_s)
        )
        for order in stuck:
            if order.order_id not in reported:
                reported.add(order.order_id)
                log.error(
                    "cancellation_overdue",
                    order_id=order.order_id,
                    stock_released=order.stock_released,
                    payment_refunded=order.payment_refunded,
                    cancelling_for_s=round(now() - order.update_time),
                )
