"""Leases: singleton background work (the outbox relay, a service's workers) runs on one
instance at a time, whichever engine the instances share.

A lease is a row (name, holder, expires_at) in the service's own database, taken or renewed in
a write transaction: taken when free or expired, renewed while this holder has it. The holder
renews every TTL/3 and counts it lost, by its own monotonic clock, TTL after its last renewal
began, so it stops acting before another instance can take the row over (expiry is wall-clock
time: instances on several hosts need their clocks in step, as NTP keeps them, well within
the TTL). A killed holder stops renewing, and another instance takes the lease within a TTL.
`hold(lease, job)` runs a job only while the lease is held and cancels it when it is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable

from runtime.database import Connection, Database
from runtime.logs import get_logger

log = get_logger(__name__)

MIGRATIONS = [
    """CREATE TABLE IF NOT EXISTS leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at REAL NOT NULL
    )""",
]
"""The `leases` group of every service's database."""


def new_holder(address: str) -> str:
    """Names this instance by its host and the address it serves on. No two live processes can
    listen on one address of one host, so a process restarted on its address after a kill -9
    is the same holder and takes its leases back at once, instead of waiting out the TTL of
    the dead one's; another instance is another holder."""
    return f"{socket.gethostname()}/{address}"


def _claim(conn: Connection, name: str, holder: str, now: float, ttl_s: float) -> bool:
    cursor = conn.execute(
        "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
        " expires_at = excluded.expires_at"
        " WHERE leases.holder = excluded.holder OR leases.expires_at < ?",
        (name, holder, now + ttl_s, now),
    )
    return cursor.rowcount == 1


def _release(conn: Connection, name: str, holder: str) -> None:
    conn.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))


class Lease:
    def __init__(self, db: Database, name: str, holder: str, ttl_s: float) -> None:
        self.name = name
        self.holder = holder
        self._db = db
        self._ttl_s = ttl_s
        self._valid_until = 0.0
        """Monotonic time until which this holder may act."""
        self._gained = asyncio.Event()
        self._lost = asyncio.Event()
        self._lost.set()

    @property
    def held(self) -> bool:
        return time.monotonic() < self._valid_until

    async def renew(self) -> bool:
        """Takes or renews the lease once; True while this holder has it."""
        began = time.monotonic()
        try:
            got = await self._db.write(
                lambda conn: _claim(conn, self.name, self.holder, time.time(), self._ttl_s)
            )
        except Exception as exc:  # the database away or contended: act only while still valid
            log.warning("lease_renewal_failed", lease=self.name, error=str(exc))
            got = False
        was_held = self.held
        if got:
            self._valid_until = began + self._ttl_s
        if self.held and not was_held:
            log.info("lease_acquired", lease=self.name, holder=self.holder)
            self._lost.clear()
            self._gained.set()
        return self.held

    async def run(self) -> None:
        """Renews every TTL/3 until cancelled; then lets the lease go for another instance."""
        try:
            while True:
                await self.renew()
                await asyncio.sleep(self._sleep_s())
                if not self.held and not self._lost.is_set():
                    log.warning("lease_lost", lease=self.name, holder=self.holder)
                    self._gained.clear()
                    self._lost.set()
        finally:
            await self.release()

    def _sleep_s(self) -> float:
        interval_s = self._ttl_s / 3
        if self.held:  # wake in time to notice an expiry the renewal could not prevent
            interval_s = min(interval_s, max(0.0, self._valid_until - time.monotonic()))
        return interval_s

    async def release(self) -> None:
        if not self.held:
            return
        self._valid_until = 0.0
        with contextlib.suppress(Exception):
            await self._db.write(lambda conn: _release(conn, self.name, self.holder))
            log.info("lease_released", lease=self.name, holder=self.holder)

    async def gained(self) -> None:
        await self._gained.wait()

    async def lost(self) -> None:
        await self._lost.wait()


async def hold(lease: Lease, job: Callable[[], Awaitable[None]]) -> None:
    """Runs `job` whenever `lease` is held, cancelling it when the lease is lost; renews the
    lease all along. Cancelled (shutdown): cancels the job and releases the lease."""
    renewing = asyncio.create_task(lease.run(), name=f"lease-{lease.name}")
    try:
        while True:
            await lease.gained()
            running = asyncio.ensure_future(job())
            lost = asyncio.ensure_future(lease.lost())
            try:
                await asyncio.wait({running, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (running, lost):
                    task.cancel()
                await asyncio.gather(running, lost, return_exceptions=True)
            if not running.cancelled():
                running.result()  # the job ended on its own (or failed: raise it)
                return
            # lost: wait to gain it again
    finally:
        renewing.cancel()
        await asyncio.gather(renewing, return_exceptions=True)
