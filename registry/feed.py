"""A change counter that streams (Watch, xDS) can wait on without polling."""

from __future__ import annotations

import asyncio


class FeedClosedError(Exception):
    """The registry is draining: streams waiting on the feed should end."""


class ChangeFeed:
    """`version` grows by one per change; `wait_past(v)` returns once it exceeds `v`."""

    def __init__(self) -> None:
        self.version = 0
        self._closed = False
        self._changed: asyncio.Event | None = None

    def publish(self) -> None:
        self.version += 1
        self._wake()

    def close(self) -> None:
        self._closed = True
        self._wake()

    async def wait_past(self, version: int) -> int:
        while self.version <= version:
            if self._closed:
                raise FeedClosedError
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()
        return self.version

    def _wake(self) -> None:
        # Events are created lazily on the loop that waits, and replaced after each wake-up.
        if self._changed is not None:
            self._changed.set()
            self._changed = None
