"""Settles authorisations with the provider, outside any database transaction.

The AuthorizePayment handler holds the credit and leaves the payment PENDING in its own
transaction; this worker asks the provider and records the outcome (and its event) in another.
A crash in between leaves the payment PENDING, and the worker asks again after restart: the
provider is idempotent by key, so nothing is charged twice. Voids that could not reach the
provider are retried until it confirms them.
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial

from runtime.database import Database
from runtime.errors import DependencyUnavailableError
from runtime.logs import get_logger, log_context
from services.payments import handlers, store
from services.payments.domain import Payment
from services.payments.provider import PaymentProvider, ProviderAnswer

log = get_logger(__name__)
MAX_IN_FLIGHT = 16


class AuthorizationWorker:
    def __init__(self, db: Database, provider: PaymentProvider, poll_interval_s: float) -> None:
        self._db = db
        self._provider = provider
        self._poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        db.after_write(self._wake.set)

    async def run(self) -> None:
        try:
            while True:
                self._wake.clear()
                pending = await self._db.read(store.pending_payments)
                for payment in pending:
                    if (
                        payment.order_id not in self._in_flight
                        and len(self._in_flight) < MAX_IN_FLIGHT
                    ):
                        task = asyncio.create_task(self._settle(payment))
                        self._in_flight[payment.order_id] = task
                        task.add_done_callback(partial(self._done, payment.order_id))
                await self._retry_voids()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval_s)
        finally:
            for task in list(self._in_flight.values()):
                task.cancel()
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)

    def _done(self, order_id: str, _: asyncio.Task[None]) -> None:
        self._in_flight.pop(order_id, None)

    async def _settle(self, p: Payment) -> None:
        with log_context(order_id=p.order_id):
            try:
                answer = await self._provider.authorize(
                    p.order_id, p.customer_id, p.amount_minor, p.currency_code
                )
            except Exception as error:  # the provider refused the request itself: a decline
                log.error("provider_rejected_request", error=repr(error))
                answer = ProviderAnswer(
                    approved=False, message=f"payment provider refused the request: {error}"
                )
            await self._db.write(
                partial(handlers.finish_authorization, order_id=p.order_id, answer=answer)
            )

    async def _retry_voids(self) -> None:
        for key in await self._db.read(store.pending_voids):
            try:
                await self._provider.void(key)
            except DependencyUnavailableError:
                return  # still down; the next round tries again
            except Exception as error:  # the provider refused the void: keep it, say why
                log.error("provider_void_refused", order_id=key, error=repr(error))
                return
            await self._db.write(partial(store.remove_pending_void, key=key))
            log.info("provider_void_confirmed", order_id=key)
