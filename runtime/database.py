"""The storage port: what a transaction offers the repositories, whichever engine is behind it.

Repositories (each service's store.py, the outbox, the inbox, the event store) take the
`Connection` a transaction hands them and speak the SQL subset both engines accept (docs/
platform.md, "Storage"): `?` placeholders, `INSERT ... ON CONFLICT`, rows read as `row["col"]`
or `row[0]`. Domain code never sees SQL. Two adapters implement `Database`: SQLite, one file per
service (sqlite_database.py, the default), and PostgreSQL, one database per service
(postgres_database.py); `storage.database_for(settings)` picks one from the configuration
alone.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from runtime.errors import DependencyUnavailableError

T = TypeVar("T")
Params = Sequence[Any]
Migrations = Mapping[str, Sequence[str]]


class _Transaction(threading.local):
    topics: set[str] | None = None


_current = _Transaction()
"""The topics announced by the write transaction running on this thread. A thread-local, not
a context variable: work inside a transaction may run in contexts of its own (a consumer
applies each message of a batch in that message's context), all on the transaction's thread."""


def announce_on_commit(topic: str) -> None:
    """Inside a write: once this transaction commits, run the `after_write` callbacks waiting
    for `topic` (the outbox relay waits for staged rows, payments' worker for provider work).
    Waking only on what concerns them spares each a read after every unrelated commit. Outside
    a write (a test driving a store on its own connection) there is nobody to tell: ignored."""
    topics = _current.topics
    if topics is not None:
        topics.add(topic)


class Row(Protocol):
    """A result row: by column name or by position (sqlite3.Row and the PostgreSQL rows)."""

    def __getitem__(self, key: int | str) -> Any: ...

    def __len__(self) -> int: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What a transaction hands its work: the sqlite3-like surface the repositories use."""

    def execute(self, sql: str, params: Params = ()) -> Cursor: ...

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> Cursor: ...


class IntegrityError(Exception):
    """A constraint refused a statement (unique key, check), in either engine. On PostgreSQL
    the transaction is aborted after it: raise, never query the same connection again."""


STORAGE_CONTENDED = "STORAGE_CONTENDED"


class StorageContendedError(DependencyUnavailableError):
    """A write kept losing to concurrent writers (serialization failures) past its retries, or
    the database could not be reached: transient. gRPC callers see UNAVAILABLE and may retry;
    a consumer naks, so the message is redelivered."""

    def __init__(self, message: str) -> None:
        super().__init__("database", message, STORAGE_CONTENDED)


class Database(ABC):
    """A service's database: `open` migrates it, `write` and `read` run a callable in one
    transaction on a worker thread (the event loop never blocks), `after_write` callbacks run
    on the loop after the committed writes that concern them."""

    def __init__(self, workers: int, thread_name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name)
        self._after_write: list[tuple[str | None, Callable[[], None]]] = []

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the data lives, safe to log (never a password)."""

    @abstractmethod
    async def open(self, migrations: Migrations) -> None:
        """Connects and applies the new migrations of each group, all in one transaction
        (see migrations.py: groups are append-only lists of single statements)."""

    @abstractmethod
    def _write_sync(self, work: Callable[[Connection], T]) -> T: ...

    @abstractmethod
    def _read_sync(self, work: Callable[[Connection], T]) -> T: ...

    @abstractmethod
    def _close_sync(self) -> None: ...

    def after_write(self, callback: Callable[[], None], topic: str | None = None) -> None:
        """`callback` runs on the event loop after every committed write that announced `topic`
        (`announce_on_commit`), or after every committed write when `topic` is None."""
        self._after_write.append((topic, callback))

    async def write(self, work: Callable[[Connection], T]) -> T:
        """Runs `work` in one write transaction; rolls back if it raises. `work` may run more
        than once (PostgreSQL retries serialization failures), so it must not act outside the
        database (no calls, no publishing): the use cases already decide inside and act after."""
        topics: set[str] = set()

        def attempt(conn: Connection) -> T:
            topics.clear()  # a retried attempt announces afresh
            _current.topics = topics
            try:
                return work(conn)
            finally:
                _current.topics = None

        result = await self._run(self._write_sync, attempt)
        for topic, callback in self._after_write:
            if topic is None or topic in topics:
                callback()
        return result

    async def read(self, work: Callable[[Connection], T]) -> T:
        """Runs `work` in one read transaction: a consistent snapshot."""
        return await self._run(self._read_sync, work)

    async def maintain(self) -> dict[str, int]:
        """Housekeeping the engine does not do well enough on its own, run by the retention job
        (runtime/retention.py) after it pruned; returns what it did, for its log line. Nothing
        by default: PostgreSQL's autovacuum makes the space of deleted rows reusable by itself."""
        return {}

    async def close(self) -> None:
        await self._run(self._close_sync)
        self._executor.shutdown(wait=True)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        # The caller's context goes with the work, so the log fields and the span of the call
        # or message being handled are the current ones inside the transaction too.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, contextvars.copy_context().run, fn, *args)
