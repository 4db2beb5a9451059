"""Background jobs orders owns, each calling the application.

The saga-deadline watcher times out saga steps past their deadline: how an order whose reply
never comes still ends REJECTED instead of PENDING forever. Cancellation is a choreography with
no coordinator to time it out; an order still CANCELLING after `cancellation_alert_s` means
inventory or payments did not react (a dead-lettered event, a service down for long), and is
reported once as an error for an operator to look at.
"""

from __future__ import annotations

import asyncio

from runtime.ids import now
from runtime.logs import get_logger
from services.orders.application import Orders

log = get_logger(__name__)


async def watch_saga_deadlines(
    orders: Orders, poll_interval_s: float, cancellation_alert_s: float
) -> None:
    reported: set[str] = set()
    while True:
        await asyncio.sleep(poll_interval_s)
        await orders.time_out_overdue_steps()
        for order in await orders.overdue_cancellations(cancellation_alert_s):
            if order.order_id not in reported:
                reported.add(order.order_id)
                log.error(
                    "cancellation_overdue",
                    order_id=order.order_id,
                    stock_released=order.stock_released,
                    payment_refunded=order.payment_refunded,
                    cancelling_for_s=round(now() - order.update_time),
                )
