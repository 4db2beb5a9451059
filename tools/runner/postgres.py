"""A PostgreSQL server of our own: one cluster in a data folder, on one loopback port.

`make up-cluster` runs one for the scaled topology (one database per service), and tests run
one per session with a fresh database per test. The server runs in the foreground as a
ManagedProcess, listens on 127.0.0.1 only and puts its unix socket in the data folder. It
refuses to run as root, so as root it runs as the `postgres` system user, which then owns the
data folder; as anyone else it runs as that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tools.runner.process import HoldsProcess, ManagedProcess

SUPERUSER = "concord"
SERVICE_ACCOUNT = "postgres"
"""The system user PostgreSQL runs as when we are root."""
POSTGRES_BIN_DIRS = ("/usr/lib/postgresql/15/bin",)


def postgres_binary(name: str) -> Path:
    """initdb / postgres: from CONCORD_POSTGRES_BIN, Debian's folder, or PATH."""
    for folder in (os.environ.get("CONCORD_POSTGRES_BIN"), *POSTGRES_BIN_DIRS):
        if folder and (Path(folder) / name).exists():
            return Path(folder) / name
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: install PostgreSQL 15 (tools/setup.sh)")
    return Path(found)


def _run_as() -> str | None:
    return SERVICE_ACCOUNT if os.geteuid() == 0 else None


def _check_reachable(folder: Path, account: pwd.struct_passwd) -> None:
    """Fails with what to do when `account` cannot enter every folder above `folder` (a clone
    under /root, mode 700): the server would die at start with a less helpful message."""
    for parent in folder.absolute().parents:
        mode = parent.stat()
        others_enter = mode.st_mode & 0o001
        owner_enters = mode.st_uid == account.pw_uid and mode.st_mode & 0o100
        group_enters = mode.st_gid == account.pw_gid and mode.st_mode & 0o010
        if not (others_enter or owner_enters or group_enters):
            raise PermissionError(
                f"PostgreSQL runs as the {account.pw_name} user (it refuses root), which cannot"
                f" enter {parent}: set CONCORD_DATA_DIR to a folder it can reach (for example"
                " /var/tmp/concord), or clone the repository outside that folder"
            )


def postgres_url(port: int, database: str) -> str:
    """A database on a server of ours: the superuser, trusted on loopback."""
    return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{database}"


@dataclass
class PostgresServer(HoldsProcess):
    port: int
    data_dir: Path
    """Ours alone: the cluster lives in `cluster/` below it, the unix socket beside it."""
    log_dir: Path
    durable: bool = True
    """False only for tests: no fsync (a crash of the machine may lose commits)."""
    detached: bool = False
    process: ManagedProcess | None = None

    @property
    def cluster_dir(self) -> Path:
        return self.data_dir / "cluster"

    @property
    def run_as(self) -> str | None:
        """The system user the server runs as: `postgres` when we are root."""
        return _run_as()

    def url(self, database: str) -> str:
        return postgres_url(self.port, database)

    def initdb(self) -> None:
        """Creates the cluster unless it exists: trust on loopback, UTF-8, superuser concord."""
        if (self.cluster_dir / "PG_VERSION").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = _run_as()
        if user is not None:
            account = pwd.getpwnam(user)
            _check_reachable(self.data_dir, account)
            os.chown(self.data_dir, account.pw_uid, account.pw_gid)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(postgres_binary("initdb")),
            "--auth=trust",
            f"--username={SUPERUSER}",
            "--encoding=UTF8",
            "--locale=C",
            f"--pgdata={self.cluster_dir}",
        ]
        if not self.durable:
            argv.append("--no-sync")
        with (self.log_dir / "postgres-initdb.log").open("ab") as log:
            subprocess.run(
                argv,
                check=True,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.data_dir,
                user=user,
            )

    def argv(self) -> list[str]:
        argv = [
            str(postgres_binary("postgres")),
            "-D",
            str(self.cluster_dir),
            "-p",
            str(self.port),
            "-k",
            str(self.data_dir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=200",
        ]
        if not self.durable:
            argv += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        return argv

    def start(self, timeout_s: float = 60.0) -> PostgresServer:
        self.initdb()
        self.process = ManagedProcess(
            name="postgres",
            argv=self.argv(),
            log_path=self.log_dir / "postgres.log",
            cwd=self.data_dir,
            detached=self.detached,
            user=self.run_as,
        ).start()
        self.process.wait_until(self.accepts_connections, timeout_s)
        return self

    def accepts_connections(self) -> bool:
        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def create_database(self, name: str) -> str:
        """A new, empty database owned by the superuser; returns its URL."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def ensure_database(self, name: str) -> str:
        """`create_database` unless it exists; returns its URL."""
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if exists.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
