"""The registry's SQLite store of published contract versions, oldest first by number.

Contracts are the registry's only durable state: instances live in memory (instances.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from runtime.database import Connection, Row

MIGRATIONS = [
    """CREATE TABLE IF NOT EXISTS contract_versions (
        version INTEGER PRIMARY KEY,
        label TEXT NOT NULL UNIQUE,
        publish_time REAL NOT NULL,
        sha256 TEXT NOT NULL,
        descriptor_set BLOB NOT NULL,
        sources TEXT NOT NULL
    )""",
]


@dataclass(frozen=True)
class ContractVersion:
    version: int
    label: str
    publish_time: float
    sha256: str
    descriptor_set: bytes
    sources: dict[str, str]


_WHOLE = "version, label, publish_time, sha256, descriptor_set, sources"
_SUMMARY = "version, label, publish_time, sha256, x'' AS descriptor_set, '{}' AS sources"


def _row(row: Row) -> ContractVersion:
    return ContractVersion(
        version=row["version"],
        label=row["label"],
        publish_time=row["publish_time"],
        sha256=row["sha256"],
        descriptor_set=bytes(row["descriptor_set"]),
        sources=json.loads(row["sources"]),
    )


def latest(conn: Connection) -> ContractVersion | None:
    row = conn.execute(
        f"SELECT {_WHOLE} FROM contract_versions ORDER BY version DESC LIMIT 1"
    ).fetchone()
    return None if row is None else _row(row)


def get(conn: Connection, version: int) -> ContractVersion | None:
    row = conn.execute(
        f"SELECT {_WHOLE} FROM contract_versions WHERE version = ?", (version,)
    ).fetchone()
    return None if row is None else _row(row)


def summaries(conn: Connection) -> list[ContractVersion]:
    """Every version, newest first, without descriptor sets and sources."""
    rows = conn.execute(f"SELECT {_SUMMARY} FROM contract_versions ORDER BY version DESC")
    return [_row(r) for r in rows]


def label_taken(conn: Connection, label: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM contract_versions WHERE label = ?", (label,)).fetchone()
        is not None
    )


def append(
    conn: Connection,
    label: str,
    at: float,
    sha256: str,
    descriptor_set: bytes,
    sources: dict[str, str],
) -> ContractVersion:
    row = conn.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM contract_versions").fetchone()
    version = int(row[0])
    conn.execute(
        "INSERT INTO contract_versions (version, label, publish_time, sha256, descriptor_set, sources)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (version, label, at, sha256, descriptor_set, json.dumps(sources, sort_keys=True)),
    )
    return ContractVersion(version, label, at, sha256, descriptor_set, dict(sources))
