"""The service's own SQLite database: WAL, `BEGIN IMMEDIATE` writes, a busy timeout.

All access runs on one dedicated thread, so the event loop never blocks and writes are
serialised: a check-then-update inside `write` (enough stock? enough credit?) cannot interleave
with another. Repositories (each service's store.py) take the connection a transaction hands
them; domain code never sees SQL, so another adapter (PostgreSQL) can replace this module.
"""

from __future__ import annotations

import asyncio
import contextvars
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from runtime import migrations as migrations_module

T = TypeVar("T")
Connection = sqlite3.Connection


class Database:
    def __init__(self, path: Path, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"db-{path.stem}")
        self._conn: sqlite3.Connection | None = None
        self._after_write: list[Callable[[], None]] = []

    async def open(self, migrations: Mapping[str, Sequence[str]]) -> None:
        """Connects and applies the new migrations of each group, all in one transaction
        (see migrations.py: groups are append-only lists of single statements)."""
        await self._run(self._open_sync, migrations)

    def _open_sync(self, migrations: Mapping[str, Sequence[str]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed transaction survives power loss, not only a process crash.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            migrations_module.apply(conn, migrations, str(self.path))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            conn.close()
            raise
        self._conn = conn

    def after_write(self, callback: Callable[[], None]) -> None:
        """Called on the event loop after every committed write (the outbox relay wakes up)."""
        self._after_write.append(callback)

    async def write(self, work: Callable[[Connection], T]) -> T:
        """Runs `work` in one `BEGIN IMMEDIATE` transaction; rolls back if it raises."""
        result = await self._run(self._transaction, work, "BEGIN IMMEDIATE")
        for callback in self._after_write:
            callback()
        return result

    async def read(self, work: Callable[[Connection], T]) -> T:
        """Runs `work` in one read transaction: a consistent snapshot."""
        return await self._run(self._transaction, work, "BEGIN")

    def _transaction(self, work: Callable[[Connection], T], begin: str) -> T:
        conn = self._connection()
        conn.execute(begin)
        try:
            result = work(conn)
            conn.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled back (a failed COMMIT); never leave the one shared
            # connection inside a transaction, and never hide the original error.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"database {self.path} is not open")
        return self._conn

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        # The caller's context goes with the work, so the log fields and the span of the call
        # or message being handled are the current ones inside the transaction too.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, contextvars.copy_context().run, fn, *args)

    async def close(self) -> None:
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)
