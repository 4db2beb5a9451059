"""The background job payments owns: settling PENDING authorisations with the provider.

It decides nothing: it finds what is PENDING, has the application settle each (at most
MAX_IN_FLIGHT at once, one per order), and has it retry the voids the provider could not take
yet. It wakes after a commit that left the provider work, when a settlement ends (one
skipped for want of a free slot waits for it), and otherwise every poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial

from runtime.logs import log_context
from services.payments.application import Payments
from services.payments.domain import Payment

MAX_IN_FLIGHT = 16


class AuthorizationWorker:
    def __init__(self, payments: Payments, poll_interval_s: float) -> None:
        self._payments = payments
        self._poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._skipped = False
        """A PENDING payment waited for a free slot: the next settlement to end wakes the loop."""
        payments.after_write(self._wake.set)

    async def run(self) -> None:
        try:
            while True:
                self._wake.clear()
                self._skipped = False
                for payment in await self._payments.pending_authorisations():
                    if payment.order_id in self._in_flight:
                        continue
                    if len(self._in_flight) >= MAX_IN_FLIGHT:
                        self._skipped = True
                    else:
                        task = asyncio.create_task(self._settle(payment))
                        self._in_flight[payment.order_id] = task
                        task.add_done_callback(partial(self._done, payment.order_id))
                await self._payments.retry_provider_voids()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval_s)
        finally:
            for task in list(self._in_flight.values()):
                task.cancel()
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    def _done(self, order_id: str, _: asyncio.Task[None]) -> None:
        self._in_flight.pop(order_id, None)
        if self._skipped:
            self._wake.set()

    async def _settle(self, payment: Payment) -> None:
        with log_context(order_id=payment.order_id):
            await self._payments.settle_authorisation(payment)
