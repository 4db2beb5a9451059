"""The scaled topology `make up-cluster` starts (docs/deploy.md), on free ports: PostgreSQL, three
clustered nats-server nodes with every stream at three replicas, two instances of each service,
two registry replicas sharing their state in JetStream, PayGate and Envoy. The smoke check passes, every process runs, and README's walk
from `make up` to a confirmed order, run as written (only the gateway's port changed), ends
CONFIRMED against it. `down` stops every process."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.repo import REPO_ROOT
from tools.devstack.smoke import smoke
from tools.runner.stack import Stack, State, python_module_launcher
from tools.runner.topology import Scale, Topology

WALK_TIMEOUT_S = 180
SCALED_PROCESSES = {
    "postgres",
    "nats-1",
    "nats-2",
    "nats-3",
    "registry",
    "registry-2",
    "paygate",
    "orders",
    "orders-2",
    "inventory",
    "inventory-2",
    "payments",
    "payments-2",
    "envoy",
}


@pytest.fixture
def scaled_stack() -> Iterator[Stack]:
    """The scaled stack in a folder under /tmp: as root, PostgreSQL runs as `postgres`, which
    cannot enter Bazel's test folders under /root."""
    folder = Path(tempfile.mkdtemp(prefix="concord-scaled-"))
    folder.chmod(0o755)
    topology = Topology.on_free_ports(folder / "data").scaled(Scale.on_free_ports())
    stack = Stack(topology, repo_root=REPO_ROOT, launcher=python_module_launcher)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()
        shutil.rmtree(folder, ignore_errors=True)


def readme_walk(gateway_port: int) -> str:
    """README's walk through the gateway up to the confirmed order, as a script: `make up` is
    what the fixture did, the gateway listens on the test's port, Python is this one."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Through the gateway", 1)[1]
    block = re.search(r"```sh\nmake up\n(.*?)```", section, re.DOTALL)
    assert block is not None, "README's walk through the gateway starts with `make up`"
    lines = block.group(1).splitlines()
    last = next(i for i, line in enumerate(lines) if 'ORDER_STATUS_CONFIRMED"' in line)
    script = "\n".join(lines[: last + 1])
    script = script.replace("localhost:8080", f"localhost:{gateway_port}")
    script = script.replace(".venv/bin/python", sys.executable)
    return (
        script
        + '\necho\necho "status: $(curl -s -H "$AUTH" '
        + (f'localhost:{gateway_port}/v1/orders/$ORDER | field \'["order"]["status"]\')"\n')
    )


def test_scaled_topology_confirms_the_readme_order_and_stops(
    scaled_stack: Stack,
) -> None:
    assert smoke(scaled_stack, REPO_ROOT)
    states = {c.name: scaled_stack.state(c) for c in scaled_stack.components()}
    assert set(states) == SCALED_PROCESSES
    assert all(state is State.RUNNING for state in states.values()), states

    walk = subprocess.run(
        ["bash", "-c", readme_walk(scaled_stack.topology.gateway_port)],
        capture_output=True,
        text=True,
        timeout=WALK_TIMEOUT_S,
        cwd=REPO_ROOT,
    )
    assert walk.returncode == 0, walk.stderr
    assert walk.stdout.splitlines()[-1] == "status: ORDER_STATUS_CONFIRMED", walk.stdout

    scaled_stack.down()
    assert not scaled_stack.running()
