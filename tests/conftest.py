"""Fixtures shared by every suite: real processes on free ports, fresh data folders, cleanup."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.devstack.nats import NatsServer
from tools.devstack.ports import free_port


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh nats-server -js with file storage, stopped after the test."""
    server = NatsServer(
        port=free_port(),
        monitor_port=free_port(),
        data_dir=tmp_path / "nats",
        log_dir=tmp_path / "logs",
    ).start()
    try:
        yield server
    finally:
        server.stop()
