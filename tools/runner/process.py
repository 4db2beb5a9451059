"""One child process with its log file: start, wait until ready, stop gracefully or kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class ProcessFailedError(RuntimeError):
    """A child that died or never became ready; the message names its log and ends with the
    log's last lines, which is what a person needs (`make up` prints it, no traceback)."""


@dataclass
class ManagedProcess:
    """A child process whose output goes to `log_path`.

    `detached` children start in their own session so they outlive the command that started
    them (`make up`); otherwise they belong to the test that started them.
    """

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    detached: bool = False
    user: str | None = None
    """Run as this system user (PostgreSQL refuses to run as root); None: as ourselves."""
    popen: subprocess.Popen[bytes] | None = None
    log_offset: int = 0
    """Where this run's output starts in the log (`make up` appends to the last run's)."""

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.log_offset = log.tell()
        full_env = {**os.environ, **self.env}
        self.popen = subprocess.Popen(
            list(self.argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=self.cwd,
            start_new_session=self.detached,
            user=self.user,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise ProcessFailedError(f"{self.name} was never started")
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_until(self, ready: Callable[[], bool], timeout_s: float = 30.0) -> None:
        """Polls `ready` until it holds; fails early, with the log's tail, if the child dies."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running():
                raise ProcessFailedError(self._failure("exited early"))
            if ready():
                return
            time.sleep(0.05)
        raise ProcessFailedError(self._failure(f"not ready after {timeout_s}s"))

    def _failure(self, what: str, lines: int = 40) -> str:
        return f"{self.name} {what} (log: {self.log_path}); its last lines:\n{self.log_tail(lines)}"

    def log_tail(self, lines: int = 40) -> str:
        """The last lines this run wrote to the log."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self.log_offset)
                written = log.read().decode(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(written[-lines:]) if written else "(nothing written to the log)"

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace_s`."""
        if not self.running():
            return
        assert self.popen is not None
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """kill -9: what a crash looks like to everyone else."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)


class HoldsProcess:
    """Stop, kill and ask after the one child a server wrapper holds (None until started):
    PostgreSQL, a NATS node and a test's Concord process all stop the same way."""

    process: ManagedProcess | None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def running(self) -> bool:
        return self.process is not None and self.process.running()
