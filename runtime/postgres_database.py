"""The PostgreSQL adapter: one database per service, shared by every instance of the service.

Sync psycopg 3 connections from a psycopg_pool.ConnectionPool, used from a small thread pool,
as the SQLite adapter runs `work(conn)` off the event loop. Writes run at SERIALIZABLE, so a
check-then-update (enough stock? enough credit?) holds against other instances as it does
against SQLite's single writer: a transaction that would break that loses with a serialization
failure, and `write` runs `work` again on a fresh snapshot (bounded, jittered), then gives up
with StorageContendedError. Reads run at REPEATABLE READ READ ONLY: one consistent snapshot.
Migrations run under a transaction-level advisory lock, so instances starting together apply
them once.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import RowMaker
from psycopg_pool import ConnectionPool

from runtime import migrations as migrations_module
from runtime.database import (
    Connection,
    Cursor,
    Database,
    IntegrityError,
    Migrations,
    Params,
    StorageContendedError,
)
from runtime.sql_dialect import postgres_ddl, postgres_placeholders

T = TypeVar("T")

MAX_WRITE_ATTEMPTS = 10
RETRY_BASE_DELAY_S = 0.005
RETRY_MAX_DELAY_S = 0.2
CONNECT_TIMEOUT_S = 30.0
MIGRATION_LOCK_KEY = 0x436F6E636F7264  # "Concord": one advisory lock per database
RETRIED_SQLSTATES = {"40001", "40P01"}
"""serialization_failure and deadlock_detected: the transaction lost a race, run it again."""


def redacted(url: str) -> str:
    """The URL without its password: what logs and errors may show."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}:***@{netloc[1]}"))


class PostgresRow:
    """A row by column name or by position, as sqlite3.Row is."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: Sequence[Any]) -> None:
        self._index = index
        self._values = values

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def keys(self) -> list[str]:
        return list(self._index)


def row_factory(cursor: psycopg.Cursor[Any]) -> RowMaker[PostgresRow]:
    index = {column.name: i for i, column in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> PostgresRow:
        return PostgresRow(index, values)

    return make


class PostgresConnection:
    """psycopg's connection behind the port's sqlite3-like surface: `?` placeholders, rows by
    name or position, constraint errors as the port's IntegrityError."""

    def __init__(self, raw: psycopg.Connection[PostgresRow]) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        try:
            return self.raw.execute(postgres_placeholders(sql), tuple(params))  # type: ignore[return-value]
        except pg_errors.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> Cursor:
        cursor = self.raw.cursor()
        try:
            cursor.executemany(postgres_placeholders(sql), [tuple(p) for p in seq_of_params])
        except pg_errors.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        return cursor  # type: ignore[return-value]


def _configure(conn: psycopg.Connection[Any]) -> None:
    # Transactions are begun explicitly, with the isolation level each kind needs.
    conn.autocommit = True
    conn.row_factory = row_factory  # type: ignore[assignment]


class PostgresDatabase(Database):
    def __init__(self, url: str, pool_size: int = 4) -> None:
        super().__init__(workers=pool_size, thread_name="db-pg")
        self._url = url
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=False,
            configure=_configure,
            name="concord",
        )

    @property
    def location(self) -> str:
        return redacted(self._url)

    async def open(self, migrations: Migrations) -> None:
        await self._run(self._open_sync, migrations)

    def _open_sync(self, migrations: Migrations) -> None:
        try:
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except Exception as exc:
            raise StorageContendedError(f"cannot connect to {self.location}: {exc}") from exc
        with self._pool.connection() as raw:
            # READ COMMITTED: after waiting for the lock, the ledger another instance just
            # wrote is visible to the next statement.
            raw.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            try:
                raw.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
                raw.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
                migrations_module.apply(
                    PostgresConnection(raw), migrations, self.location, translate=postgres_ddl
                )
                raw.execute("COMMIT")
            except BaseException:
                raw.execute("ROLLBACK")
                raise

    def _write_sync(self, work: Callable[[Connection], T]) -> T:
        for attempt in range(1, MAX_WRITE_ATTEMPTS + 1):
            try:
                return self._transaction(work, "BEGIN ISOLATION LEVEL SERIALIZABLE")
            except psycopg.Error as exc:
                if exc.sqlstate not in RETRIED_SQLSTATES:
                    raise
                if attempt == MAX_WRITE_ATTEMPTS:
                    raise StorageContendedError(
                        f"a write lost to concurrent writers {attempt} times in a row"
                        f" ({exc.sqlstate}); try again"
                    ) from exc
                # Full jitter: writers that collided do not collide again in step.
                delay_s = min(RETRY_MAX_DELAY_S, RETRY_BASE_DELAY_S * 2**attempt)
                time.sleep(random.uniform(0, delay_s))
        raise AssertionError("unreachable")

    def _read_sync(self, work: Callable[[Connection], T]) -> T:
        return self._transaction(work, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def _transaction(self, work: Callable[[Connection], T], begin: str) -> T:
        try:
            with self._pool.connection() as raw:
                raw.execute(begin)
                try:
                    result = work(PostgresConnection(raw))
                    raw.execute("COMMIT")
                except BaseException:
                    # Never hide the original error behind a failed rollback (a lost
                    # connection); the pool discards a broken connection on return.
                    with contextlib.suppress(psycopg.Error):
                        raw.execute("ROLLBACK")
                    raise
                return result
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if exc.sqlstate in RETRIED_SQLSTATES:
                raise
            raise StorageContendedError(f"database {self.location} unavailable: {exc}") from exc

    def _close_sync(self) -> None:
        self._pool.close()
