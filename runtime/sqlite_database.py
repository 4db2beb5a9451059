"""The SQLite adapter: one file per service, WAL, `BEGIN IMMEDIATE` writes, a busy timeout.

All access runs on one dedicated thread, so writes are serialised: a check-then-update inside
`write` (enough stock? enough credit?) cannot interleave with another of this process, and
`BEGIN IMMEDIATE` with the busy timeout serialises it with another process sharing the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from runtime import migrations as migrations_module
from runtime.database import Cursor, Database, IntegrityError, Migrations, Params

T = TypeVar("T")


class SqliteConnection:
    """sqlite3's connection, with its constraint errors as the port's IntegrityError."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        try:
            return self.raw.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> Cursor:
        try:
            return self.raw.executemany(sql, seq_of_params)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc


class SqliteDatabase(Database):
    def __init__(self, path: Path, busy_timeout_ms: int = 5000) -> None:
        super().__init__(workers=1, thread_name=f"db-{path.stem}")
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._conn: SqliteConnection | None = None

    @property
    def location(self) -> str:
        return str(self.path)

    async def open(self, migrations: Migrations) -> None:
        await self._run(self._open_sync, migrations)

    def _open_sync(self, migrations: Migrations) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        raw = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        raw.row_factory = sqlite3.Row
        raw.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed transaction survives power loss, not only a process crash.
        raw.execute("PRAGMA synchronous=FULL")
        raw.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        raw.execute("PRAGMA foreign_keys=ON")
        raw.execute("BEGIN IMMEDIATE")
        try:
            migrations_module.apply(SqliteConnection(raw), migrations, str(self.path))
            raw.execute("COMMIT")
        except BaseException:
            raw.execute("ROLLBACK")
            raw.close()
            raise
        self._conn = SqliteConnection(raw)

    def _write_sync(self, work: Callable[[SqliteConnection], T]) -> T:
        return self._transaction(work, "BEGIN IMMEDIATE")

    def _read_sync(self, work: Callable[[SqliteConnection], T]) -> T:
        return self._transaction(work, "BEGIN")

    def _transaction(self, work: Callable[[SqliteConnection], T], begin: str) -> T:
        conn = self._connection()
        conn.raw.execute(begin)
        try:
            result = work(conn)
            conn.raw.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled back (a failed COMMIT); never leave the one shared
            # connection inside a transaction, and never hide the original error.
            if conn.raw.in_transaction:
                conn.raw.execute("ROLLBACK")
            raise
        return result

    async def maintain(self) -> dict[str, int]:
        """Checkpoints the WAL into the database file and truncates it to zero bytes. SQLite's
        automatic checkpoints copy pages back but never shrink the file, and under sustained
        writes with readers about they may never reach its end: the WAL then grows without
        bound. On this process's one database thread, so no write of ours is in flight; another
        process reading the file makes it wait up to the busy timeout and report `wal_busy=1`
        (the next run tries again)."""
        return await self._run(self._checkpoint_sync)

    def _checkpoint_sync(self) -> dict[str, int]:
        row = self._connection().raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return {"wal_busy": row[0], "wal_frames": row[1], "wal_checkpointed_frames": row[2]}

    def _connection(self) -> SqliteConnection:
        if self._conn is None:
            raise RuntimeError(f"database {self.path} is not open")
        return self._conn

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.raw.close()
            self._conn = None
