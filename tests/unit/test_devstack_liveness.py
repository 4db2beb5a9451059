"""`make up` decides whether a component is still running by its process, not by its pid file
alone (tools/runner/liveness.py): a zombie left by kill -9, or another program that took the
pid, is not running, and neither is a process of ours that no longer answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.runner.liveness import alive_and_ours, process_state
from tools.runner.stack import Stack, State, python_module_launcher
from tools.runner.topology import Topology

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def zombie() -> Iterator[int]:
    """A child killed with -9 and not reaped yet: what a crashed component is to a parent
    (or a PID 1) that does not reap."""
    child = subprocess.Popen([*SLEEPER, "paygate"])
    os.kill(child.pid, signal.SIGKILL)
    for _ in range(200):  # the kernel makes it a zombie within microseconds; bound the wait
        if process_state(child.pid) == "Z":
            break
        time.sleep(0.01)
    try:
        yield child.pid
    finally:
        child.wait()


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process whose command line says `paygate`, listening nowhere."""
    child = subprocess.Popen([*SLEEPER, "paygate"])
    try:
        yield child
    finally:
        child.kill()
        child.wait()


def test_a_zombie_passes_kill_0_but_is_not_alive(zombie: int) -> None:
    assert process_state(zombie) == "Z"
    os.kill(zombie, 0)  # the check `make up` used: no error, so "already running"
    assert not alive_and_ours(zombie, "paygate")


def test_a_live_process_is_ours_only_when_its_command_line_names_the_component(
    sleeper: subprocess.Popen[bytes],
) -> None:
    assert alive_and_ours(sleeper.pid, "paygate")
    assert not alive_and_ours(sleeper.pid, "inventory")


def test_no_such_process_is_not_alive() -> None:
    assert process_state(2**22 + 12345) is None
    assert not alive_and_ours(2**22 + 12345, "paygate")


def test_the_stack_calls_a_zombie_stopped_and_a_silent_process_not_answering(
    tmp_path: Path, zombie: int, sleeper: subprocess.Popen[bytes]
) -> None:
    stack = Stack(
        Topology.on_free_ports(tmp_path / "data"),
        repo_root=tmp_path,
        launcher=python_module_launcher,
    )
    paygate = stack.service("paygate")
    pid_file = stack.topology.run_dir / "paygate.pid"
    pid_file.parent.mkdir(parents=True)

    pid_file.write_text(str(zombie))
    assert stack.state(paygate) is State.STOPPED
    pid_file.write_text(str(sleeper.pid))
    assert stack.state(paygate) is State.NOT_ANSWERING
    pid_file.unlink()
    assert stack.state(paygate) is State.STOPPED
