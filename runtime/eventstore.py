"""An append-only event store with optimistic concurrency, and snapshots, in the database.

Each aggregate is a stream of protobuf events numbered 1, 2, 3...; `append` names the version
it expects the stream to be at, and a writer that lost the race gets ConcurrencyConflictError,
never a silent overwrite (the UNIQUE (stream_id, version) constraint backs the check). `seq`
orders all events of all streams, for rebuilding projections by replay. On PostgreSQL two
instances appending to one stream at once are serialised by the write transaction: the loser
runs again, reads the new version, and gets the conflict.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from google.protobuf.message import Message

from runtime.database import Connection, IntegrityError, Row
from runtime.errors import ConcurrencyConflictError
from runtime.events import metadata_of
from runtime.messages import decode

MIGRATIONS = [
    """CREATE TABLE IF NOT EXISTS events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        stream_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        event_id TEXT NOT NULL UNIQUE,
        type_name TEXT NOT NULL,
        payload BLOB NOT NULL,
        occur_time REAL NOT NULL,
        UNIQUE (stream_id, version)
    )""",
    """CREATE TABLE IF NOT EXISTS snapshots (
        stream_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (stream_id, version)
    )""",
]


@dataclass(frozen=True)
class Snapshot:
    version: int
    state: str


def current_version(conn: Connection, stream_id: str) -> int:
    row = conn.execute(
        "SELECT max(version) FROM events WHERE stream_id = ?", (stream_id,)
    ).fetchone()
    return int(row[0] or 0)


def append(conn: Connection, stream_id: str, expected_version: int, events: list[Message]) -> int:
    """Appends events numbered from expected_version + 1; returns the new version."""
    actual = current_version(conn, stream_id)
    if actual != expected_version:
        raise ConcurrencyConflictError(stream_id, expected_version, actual)
    version = expected_version
    for event in events:
        version += 1
        meta = metadata_of(event)
        if meta.version != version:
            raise ValueError(
                f"event {type(event).__name__} carries version {meta.version}, expected {version}"
            )
        try:
            conn.execute(
                "INSERT INTO events (stream_id, version, event_id, type_name, payload, occur_time)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    stream_id,
                    version,
                    meta.event_id,
                    event.DESCRIPTOR.full_name,
                    event.SerializeToString(),
                    meta.occur_time,
                ),
            )
        except IntegrityError as exc:
            # No further query: on PostgreSQL the failed insert aborted the transaction. The
            # version this insert wanted exists, so the stream is at least there.
            raise ConcurrencyConflictError(stream_id, expected_version, version) from exc
    return version


def _decoded(rows: Iterable[Row]) -> list[Message]:
    return [decode(row["type_name"], row["payload"]) for row in rows]


def read_stream(
    conn: Connection,
    stream_id: str,
    after_version: int = 0,
    up_to_version: int | None = None,
    up_to_time: float | None = None,
) -> list[Message]:
    query = "SELECT type_name, payload FROM events WHERE stream_id = ? AND version > ?"
    params: list[object] = [stream_id, after_version]
    if up_to_version is not None:
        query += " AND version <= ?"
        params.append(up_to_version)
    if up_to_time is not None:
        query += " AND occur_time <= ?"
        params.append(up_to_time)
    return _decoded(conn.execute(query + " ORDER BY version", params))


def read_all(conn: Connection) -> list[Message]:
    """Every event of every stream, in the order they were appended."""
    return _decoded(conn.execute("SELECT type_name, payload FROM events ORDER BY seq"))


def save_snapshot(conn: Connection, stream_id: str, version: int, state: str) -> None:
    conn.execute(
        "INSERT INTO snapshots (stream_id, version, state) VALUES (?, ?, ?)"
        " ON CONFLICT (stream_id, version) DO UPDATE SET state = excluded.state",
        (stream_id, version, state),
    )


def latest_snapshot(
    conn: Connection, stream_id: str, max_version: int | None = None
) -> Snapshot | None:
    row = conn.execute(
        "SELECT version, state FROM snapshots WHERE stream_id = ? AND version <= ?"
        " ORDER BY version DESC LIMIT 1",
        (stream_id, max_version if max_version is not None else 2**62),
    ).fetchone()
    return Snapshot(row["version"], row["state"]) if row else None
