"""A JetStream key-value bucket and a watch that keeps a replica's view of it current.

The registry replicas share their state through buckets (shared_instances.py,
shared_contracts.py). Each replica reads its own view, kept current by one watch: every put,
delete and TTL purge made through any replica arrives in the bucket's order. After NATS moves
the connection (the bus's `generation` changes) or the watch fails, the view is rebuilt from a
fresh watch: its first pass is the whole bucket, and keys it no longer holds are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from nats.js.api import KeyValueConfig
from nats.js.errors import APIError, BucketNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from runtime.bus import Bus, leader_unavailable
from runtime.logs import get_logger

log = get_logger(__name__)

OPEN_RETRY_S = 0.5
WATCH_POLL_S = 1.0
"""How often an idle watch checks that the connection did not move under it."""
DELETED = frozenset({"DEL", "PURGE"})
"""Entry operations that remove a key (a purge is also what a TTL expiry leaves)."""

WRONG_LAST_SEQUENCE = 10071
"""JetStream's error code for a revision-checked write (or a create) that lost the race."""


def lost_race(error: Exception) -> bool:
    """True when `update(last=...)`, `delete(last=...)` or `create` found another revision."""
    return isinstance(error, KeyWrongLastSequenceError) or (
        isinstance(error, APIError) and error.err_code == WRONG_LAST_SEQUENCE
    )


OnPut = Callable[[str, bytes, int], None]
"""(key, value, revision): a key's new value."""
OnDelete = Callable[[str], None]


class WatchedBucket:
    def __init__(
        self, bus: Bus, config: KeyValueConfig, on_put: OnPut, on_delete: OnDelete
    ) -> None:
        self._bus = bus
        self._config = config
        self._on_put = on_put
        self._on_delete = on_delete
        self._kv: KeyValue | None = None
        self._keys: set[str] = set()
        self._watcher: KeyValue.KeyWatcher | None = None
        self._generation = -1

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise RuntimeError(f"bucket {self._config.bucket} is not open")
        return self._kv

    async def open(self) -> None:
        """Binds the bucket (created on first use) and loads the whole view before returning."""
        while True:
            try:
                self._kv = await self._bind()
                await self._rewatch()
                return
            except Exception as error:
                if not leader_unavailable(error):
                    raise
                log.info("kv_bucket_waiting", bucket=self._config.bucket, error=repr(error))
                await asyncio.sleep(OPEN_RETRY_S)

    async def _bind(self) -> KeyValue:
        js = self._bus.js
        try:
            return await js.key_value(self._config.bucket)
        except BucketNotFoundError:
            kv = await js.create_key_value(self._config)
            log.info(
                "kv_bucket_created", bucket=self._config.bucket, replicas=self._config.replicas
            )
            return kv

    async def run(self) -> None:
        """Applies changes until cancelled; rebuilds the view after a reconnect or a failure."""
        try:
            while True:
                try:
                    await self._follow()
                    await self._rewatch()
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    log.warning("kv_watch_failed", bucket=self._config.bucket, error=repr(error))
                    self._generation = -1  # watch again from scratch
                    await asyncio.sleep(OPEN_RETRY_S)
        finally:
            await self._stop_watch()

    async def _follow(self) -> None:
        """Returns when the connection moved (or there is no watch); raises when it fails."""
        watcher = self._watcher
        while watcher is not None and self._bus.generation == self._generation:
            entry = await _next(watcher, WATCH_POLL_S)
            if entry is not None:
                self._apply(entry)

    async def _rewatch(self) -> None:
        await self._stop_watch()
        self._generation = self._bus.generation
        watcher = self._watcher = await self.kv.watchall()
        seen: set[str] = set()
        while True:
            entry = await _next(watcher, self._bus.request_timeout_s, initial=True)
            if entry is None:  # the first pass is over: the view is the bucket
                break
            seen.add(entry.key)
            self._apply(entry)
        for key in self._keys - seen:
            self._keys.discard(key)
            self._on_delete(key)

    def _apply(self, entry: KeyValue.Entry) -> None:
        if entry.operation in DELETED or entry.value is None:
            self._keys.discard(entry.key)
            self._on_delete(entry.key)
            return
        self._keys.add(entry.key)
        self._on_put(entry.key, entry.value, entry.revision or 0)

    async def _stop_watch(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(watcher.stop(), self._bus.request_timeout_s)


async def _next(
    watcher: KeyValue.KeyWatcher, timeout_s: float, initial: bool = False
) -> KeyValue.Entry | None:
    """The watch's next entry; None at the end of its first pass, or when nothing came within
    `timeout_s` while following (during the first pass that is an error: the view would be
    partial). Waits with asyncio.wait, which never loses a cancellation (KeyWatcher.updates'
    wait_for on Python 3.11 could leave a cancelled replica's shutdown hanging)."""
    pending = asyncio.ensure_future(watcher.__anext__())
    try:
        done, _ = await asyncio.wait({pending}, timeout=timeout_s)
    finally:
        if not pending.done():
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
    if not done:
        if initial:
            raise TimeoutError(f"no entry within {timeout_s}s during the watch's first pass")
        return None
    entry: KeyValue.Entry | None = pending.result()
    return entry
