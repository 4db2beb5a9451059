"""Fixtures shared by every suite: real processes on free ports, fresh data folders, cleanup."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from tests.support.postgres import STORAGES, PostgresDatabases, SessionPostgres, database_url_env
from tests.support.processes import ServiceRunner
from tests.support.registry_process import ConcordProcess, registry_process
from tests.support.repo import REPO_ROOT
from tools.runner.nats import CLUSTER_SIZE, NatsCluster, NatsServer
from tools.runner.ports import free_ports
from tools.runner.stack import SERVICES, Stack, python_module_launcher
from tools.runner.topology import Topology


@pytest.fixture
def topology(tmp_path: Path) -> Topology:
    """Every port free, every file under this test's own folder."""
    return Topology.on_free_ports(tmp_path / "data")


@pytest.fixture(scope="session")
def postgres_session() -> Iterator[SessionPostgres]:
    """One PostgreSQL server for the whole session, started when a test first needs it."""
    session = SessionPostgres()
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def pg_databases(postgres_session: SessionPostgres) -> Iterator[PostgresDatabases]:
    """Fresh databases on the session's server (`pg_databases.create(label)`), dropped after."""
    databases = PostgresDatabases(postgres_session)
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture(params=STORAGES)
def storage(request: pytest.FixtureRequest) -> str:
    """Runs the test on each storage backend; a suite asks for it to cover both."""
    return str(request.param)


@pytest.fixture
def database_url(storage: str, request: pytest.FixtureRequest) -> Callable[[str], str | None]:
    """label -> the URL of a fresh PostgreSQL database, or None on SQLite (the adapters'
    `database_at` then opens a file)."""
    if storage == "sqlite":
        return lambda label: None
    databases: PostgresDatabases = request.getfixturevalue("pg_databases")
    return databases.create


@pytest.fixture
def stack(topology: Topology, request: pytest.FixtureRequest) -> Stack:
    """The test's stack; in a test that asks for `storage`, on that backend: each shop
    service gets its own fresh PostgreSQL database through CONCORD_<SERVICE>_DATABASE_URL."""
    env: dict[str, str] = {}
    if "storage" in request.fixturenames:
        storage = request.getfixturevalue("storage")
        if storage != "sqlite":
            databases: PostgresDatabases = request.getfixturevalue("pg_databases")
            env = database_url_env(storage, list(SERVICES), databases.create)
    return Stack(
        topology, repo_root=REPO_ROOT, launcher=python_module_launcher, service_env_extra=env
    )


@pytest.fixture
def nats_server(topology: Topology) -> Iterator[NatsServer]:
    """A fresh nats-server -js with file storage, stopped after the test."""
    server = NatsServer(
        port=topology.nats_port,
        monitor_port=topology.nats_monitor_port,
        data_dir=topology.data_dir / "nats",
        log_dir=topology.log_dir,
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_cluster(topology: Topology) -> Iterator[NatsCluster]:
    """Three clustered nats-servers, JetStream on file storage in a folder each, a meta leader
    elected; stopped after the test."""
    ports = free_ports(3 * CLUSTER_SIZE)
    cluster = NatsCluster.on_ports(
        client_ports=ports[:CLUSTER_SIZE],
        monitor_ports=ports[CLUSTER_SIZE : 2 * CLUSTER_SIZE],
        cluster_ports=ports[2 * CLUSTER_SIZE :],
        data_dir=topology.data_dir / "nats-cluster",
        log_dir=topology.log_dir,
    )
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def services(stack: Stack, nats_server: NatsServer) -> Iterator[ServiceRunner]:
    """Starts services on demand (`services.start("inventory")`); stops them after the test."""
    runner = ServiceRunner(stack)
    try:
        yield runner
    finally:
        runner.stop_all()


@pytest.fixture
def cluster_services(stack: Stack, nats_cluster: NatsCluster) -> Iterator[ServiceRunner]:
    """Like `services`, but every service talks to the NATS cluster, its streams at one
    replica per node."""
    runner = ServiceRunner(
        stack,
        service_env={
            "CONCORD_NATS_URL": nats_cluster.urls,
            "CONCORD_NATS_REPLICAS": str(len(nats_cluster.nodes)),
        },
    )
    try:
        yield runner
    finally:
        runner.stop_all()


@pytest.fixture
async def nats_client(nats_server: NatsServer) -> AsyncIterator[Client]:
    nc = await nats.connect(nats_server.url)
    try:
        yield nc
    finally:
        await nc.close()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[ConcordProcess]:
    """A fresh registry process with short probe, lease and warm-up settings."""
    process = registry_process(tmp_path / "registry-data", tmp_path / "logs").start()
    try:
        yield process
    finally:
        process.stop()
