"""Append-only schema migrations, recorded in the database they were applied to.

Each group (the platform's outbox, its inbox, a service's own tables) is an ordered list of
single SQL statements. A database remembers the fingerprint of every statement it applied; on
start the new statements at the end of a group are applied, and an applied statement that has
since been edited is refused with a clear error instead of leaving a table silently stale.
Change a schema by appending a statement (ALTER TABLE ...), never by editing one.

Statements are written once, for SQLite; an adapter for another engine passes `translate`
(PostgreSQL: sql_dialect.postgres_ddl) and the ledger still records the fingerprint of the
statement as written, so (group, position, sha256) is the same whichever engine applied it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence

from runtime.database import Connection

Migrations = Mapping[str, Sequence[str]]

_LEDGER = """CREATE TABLE IF NOT EXISTS schema_migrations (
    grp TEXT NOT NULL,
    position INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    applied_at REAL NOT NULL,
    PRIMARY KEY (grp, position)
)"""


class SchemaDriftError(RuntimeError):
    pass


def fingerprint(statement: str) -> str:
    return hashlib.sha256(" ".join(statement.split()).encode()).hexdigest()


def _as_written(statement: str) -> str:
    return statement


def apply(
    conn: Connection,
    migrations: Migrations,
    where: str,
    translate: Callable[[str], str] = _as_written,
) -> int:
    """Applies what is new, inside the caller's transaction; returns how many statements ran.
    `translate` turns a statement as written into the engine's dialect before it runs."""
    conn.execute(translate(_LEDGER))
    ran = 0
    for group, statements in migrations.items():
        applied = [
            row[0]
            for row in conn.execute(
                "SELECT sha256 FROM schema_migrations WHERE grp = ? ORDER BY position", (group,)
            )
        ]
        if len(applied) > len(statements):
            raise SchemaDriftError(
                f"{where}: the database has {len(applied)} '{group}' migrations, this code only"
                f" {len(statements)}: it was made by a newer version"
            )
        for position, statement in enumerate(statements):
            digest = fingerprint(statement)
            if position < len(applied):
                if applied[position] != digest:
                    raise SchemaDriftError(
                        f"{where}: migration '{group}'[{position}] differs from the one this"
                        " database applied. Migrations are append-only: add a statement (e.g."
                        " ALTER TABLE) instead of editing one. Local development data can be"
                        " dropped with `make clean`."
                    )
                continue
            conn.execute(translate(statement))
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?, ?)",
                (group, position, digest, time.time()),
            )
            ran += 1
    return ran
