"""The circuit breaker's state machine under asyncio concurrency."""

from __future__ import annotations

import asyncio

import pytest

from runtime.breaker import Breaker, BreakerOpenError

RESET_S = 0.05


class Boom(Exception):
    pass


def counts(error: BaseException) -> bool:
    return isinstance(error, Boom)


async def fail() -> None:
    raise Boom()


async def ok() -> str:
    return "ok"


async def trip(breaker: Breaker) -> None:
    for _ in range(breaker.fail_max):
        with pytest.raises(Boom):
            await breaker.call(fail, counts)
    assert breaker.state == "OPEN"


async def test_opens_after_fail_max_and_then_fails_without_calling() -> None:
    breaker = Breaker("unit-a", fail_max=3, reset_timeout_s=60)
    await trip(breaker)
    called = False

    async def spy() -> None:
        nonlocal called
        called = True

    with pytest.raises(BreakerOpenError, match="unit-a is unavailable: circuit breaker OPEN"):
        await breaker.call(spy, counts)
    assert not called


async def test_success_resets_the_count_while_closed() -> None:
    breaker = Breaker("unit-b", fail_max=2, reset_timeout_s=60)
    with pytest.raises(Boom):
        await breaker.call(fail, counts)
    await breaker.call(ok, counts)
    with pytest.raises(Boom):
        await breaker.call(fail, counts)
    assert breaker.state == "CLOSED"


async def test_half_open_admits_exactly_the_configured_trials_under_concurrency() -> None:
    breaker = Breaker("unit-c", fail_max=1, reset_timeout_s=RESET_S, half_open_max_calls=2)
    await trip(breaker)
    await asyncio.sleep(RESET_S * 2)
    release = asyncio.Event()
    entered = 0

    async def slow_trial() -> str:
        nonlocal entered
        entered += 1
        await release.wait()
        return "ok"

    calls = [asyncio.create_task(breaker.call(slow_trial, counts)) for _ in range(20)]
    await asyncio.sleep(0.01)
    assert entered == 2
    release.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert sum(r == "ok" for r in results) == 2
    assert sum(isinstance(r, BreakerOpenError) for r in results) == 18
    assert breaker.state == "CLOSED"


async def test_failed_trial_opens_again() -> None:
    breaker = Breaker("unit-d", fail_max=1, reset_timeout_s=RESET_S)
    await trip(breaker)
    await asyncio.sleep(RESET_S * 2)
    with pytest.raises(Boom):
        await breaker.call(fail, counts)
    assert breaker.state == "OPEN"


async def test_cancellation_counts_as_a_failure() -> None:
    breaker = Breaker("unit-e", fail_max=1, reset_timeout_s=60)

    async def hang() -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(breaker.call(hang, counts))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state == "OPEN"


async def test_errors_about_the_request_do_not_count() -> None:
    breaker = Breaker("unit-f", fail_max=1, reset_timeout_s=60)

    async def bad_request() -> None:
        raise ValueError("not found")

    for _ in range(3):
        with pytest.raises(ValueError):
            await breaker.call(bad_request, counts)
    assert breaker.state == "CLOSED"
