"""PostgreSQL for tests: one server per pytest session (per Bazel target), started the first
time a test asks for it, and a fresh database per test and service, dropped afterwards.

The server runs without fsync (tests only: nothing here must survive a machine crash) in a
folder of its own under the system temp dir, owned by the `postgres` user when we are root.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tools.runner.ports import free_ports
from tools.runner.postgres import PostgresServer

STORAGES = ("sqlite", "postgresql")
"""The backends storage-touching suites run on (the `storage` fixture's params)."""


@dataclass
class SessionPostgres:
    """The session's server, started lazily, stopped and removed at the end."""

    server: PostgresServer | None = None
    folder: Path | None = None
    _names: itertools.count[int] = field(default_factory=itertools.count)

    def get(self) -> PostgresServer:
        if self.server is None:
            self.folder = Path(tempfile.mkdtemp(prefix="concord-pg-"))
            self.server = PostgresServer(
                port=free_ports(1)[0],
                data_dir=self.folder,
                log_dir=self.folder / "logs",
                durable=False,
            ).start()
        return self.server

    def unique_name(self, label: str) -> str:
        return f"{label}_{os.getpid()}_{next(self._names)}"

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class PostgresDatabases:
    """Fresh databases on the session's server for one test; all dropped when it ends."""

    session: SessionPostgres
    created: list[str] = field(default_factory=list)

    def create(self, label: str) -> str:
        """A new empty database; returns its URL."""
        name = self.session.unique_name(label)
        url = self.session.get().create_database(name)
        self.created.append(name)
        return url

    def drop_all(self) -> None:
        if self.session.server is None:
            return
        for name in self.created:
            self.session.server.drop_database(name)
        self.created.clear()


def database_url_env(
    storage: str, services: list[str], create: Callable[[str], str]
) -> dict[str, str]:
    """`CONCORD_<SERVICE>_DATABASE_URL` for each service on PostgreSQL; nothing for SQLite."""
    if storage == "sqlite":
        return {}
    return {f"CONCORD_{name.upper()}_DATABASE_URL": create(name) for name in services}
