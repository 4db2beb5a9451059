"""Fixtures for tests through the gateway: Envoy on free ports, with or without services."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import running_gateway
from tools.devstack.gateway import Gateway, GatewaySettings, RouteLimit
from tools.devstack.topology import Topology


@pytest.fixture(scope="module")
def lone_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Envoy with nothing behind it: every request it lets through finds its upstream down.

    Shared by a module's tests, which is safe because the default rate limits are far above
    what they send.
    """
    topology = Topology.on_free_ports(Path(tmp_path_factory.mktemp("lone-gateway")))
    with running_gateway(topology) as gateway:
        yield gateway


# Small buckets that never refill during a test, so the request that crosses the limit is known.
STRICT_LIMITS = GatewaySettings(
    reads=RouteLimit(burst=4, fill_interval_s=3600),
    writes=RouteLimit(burst=2, fill_interval_s=3600),
    grpc=RouteLimit(burst=2, fill_interval_s=3600),
)


@pytest.fixture
def strict_gateway(topology: Topology) -> Iterator[Gateway]:
    """Envoy with STRICT_LIMITS for the test's topology: services started through the
    `services` fixture are behind it."""
    with running_gateway(topology, STRICT_LIMITS) as gateway:
        yield gateway


@pytest.fixture
def gateway(topology: Topology) -> Iterator[Gateway]:
    """Envoy with the default settings for the test's topology, in front of the services the
    test starts (`services.start("inventory")`)."""
    with running_gateway(topology) as gateway:
        yield gateway
