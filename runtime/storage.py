"""Chooses the storage adapter from configuration alone: a deployment moves a service to
PostgreSQL by setting `CONCORD_<SERVICE>_DATABASE_URL`, with no change to its code."""

from __future__ import annotations

from pathlib import Path

from runtime.database import Database
from runtime.postgres_database import PostgresDatabase
from runtime.settings import ServiceSettings
from runtime.sqlite_database import SqliteDatabase


def database_for(settings: ServiceSettings) -> Database:
    """PostgreSQL when the service has a database URL, else its SQLite file under the data
    folder (`CONCORD_DATA_DIR`), exactly as before there was a choice."""
    return database_at(
        settings.database_path,
        settings.database_url,
        pool_size=settings.database_pool_size,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
    )


def database_at(
    sqlite_path: Path, url: str | None, pool_size: int = 4, busy_timeout_ms: int = 5000
) -> Database:
    """PostgreSQL at `url` when there is one, else SQLite at `sqlite_path`."""
    if url:
        return PostgresDatabase(url, pool_size)
    return SqliteDatabase(sqlite_path, busy_timeout_ms)
