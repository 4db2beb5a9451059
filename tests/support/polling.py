"""Bounded waits: poll a condition until it holds, fail with the last observation if it never
does. Tests wait for outcomes this way instead of sleeping for a guessed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
POLL_INTERVAL_S = 0.1


async def eventually(
    observe: Callable[[], Awaitable[T]],
    holds: Callable[[T], bool],
    timeout_s: float,
    what: str,
) -> T:
    """Returns the first observation for which `holds` is true, within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while True:
        last = await observe()
        if holds(last):
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout_s}s; last seen: {last!r}")
        await asyncio.sleep(POLL_INTERVAL_S)


def until(observe: Callable[[], T], holds: Callable[[T], bool], timeout_s: float, what: str) -> T:
    """`eventually` for synchronous observations (admin endpoints, HTTP calls)."""
    deadline = time.monotonic() + timeout_s
    while True:
        last = observe()
        if holds(last):
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout_s}s; last seen: {last!r}")
        time.sleep(POLL_INTERVAL_S)
