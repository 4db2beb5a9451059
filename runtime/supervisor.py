"""Owns a service's background loops (outbox relay, consumers, saga deadlines, the provider
worker...): restarts one that dies, cancels and awaits all on shutdown.

A loop that raises is logged and started again after a growing pause, so one unexpected error
(a full disk, a provider's odd answer) does not silently leave orders PENDING for good. A
CancelledError that leaks out of a loop while nobody cancelled it (a bug seen in the registry's
prober) counts as dying too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from runtime.logs import get_logger

log = get_logger(__name__)

RESTART_BACKOFF_S = 0.5
MAX_RESTART_BACKOFF_S = 30.0


class Supervisor:
    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def start(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        task = asyncio.create_task(self._supervise(name, loop), name=name)
        self._tasks.append(task)

    async def _supervise(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        backoff_s = RESTART_BACKOFF_S
        while True:
            try:
                await loop()
                log.info("background_task_finished", task=name)
                return
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if self._stopping or (current is not None and current.cancelling()):
                    raise
                log.error(
                    "background_task_cancelled_unexpectedly", task=name, restart_in_s=backoff_s
                )
            except Exception as error:
                log.error(
                    "background_task_died",
                    exc_info=True,
                    task=name,
                    error=repr(error),
                    restart_in_s=backoff_s,
                )
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, MAX_RESTART_BACKOFF_S)

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
