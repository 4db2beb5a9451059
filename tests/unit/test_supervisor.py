"""Background loops are restarted when they die, and stopped for good on shutdown."""

from __future__ import annotations

import asyncio

from runtime import supervisor
from runtime.supervisor import Supervisor


async def test_a_loop_that_dies_is_started_again(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(supervisor, "RESTART_BACKOFF_S", 0.01)
    runs = 0
    healthy = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError("disk full")
        healthy.set()
        await asyncio.Event().wait()

    owner = Supervisor()
    owner.start("flaky", flaky)
    await asyncio.wait_for(healthy.wait(), timeout=5)
    assert runs == 3
    await owner.stop()


async def test_a_leaked_cancellation_does_not_end_the_loop(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(supervisor, "RESTART_BACKOFF_S", 0.01)
    runs = 0
    again = asyncio.Event()

    async def leaky() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise asyncio.CancelledError()  # as a closed channel under an in-flight call does
        again.set()
        await asyncio.Event().wait()

    owner = Supervisor()
    owner.start("leaky", leaky)
    await asyncio.wait_for(again.wait(), timeout=5)
    await owner.stop()
    assert runs == 2
