"""Whether a process `make up` started is still the one it started, and still alive.

`os.kill(pid, 0)` is not enough: it succeeds on a zombie (a process killed with -9 whose
parent has not reaped it, common in containers whose PID 1 never reaps), and on an unrelated
process that reused the pid. So a pid file only counts when /proc says the process is neither
a zombie nor dead and its command line is ours; the stack then also asks the component itself
(gRPC health or its port, `Component.ready`) before calling it running.
"""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")
GONE_STATES = frozenset("ZXx")
"""/proc/<pid>/stat states of a process that will never run again: zombie, dead."""


def process_state(pid: int, proc: Path = PROC) -> str | None:
    """The one-letter state from /proc/<pid>/stat (R, S, D, Z...), None when there is no such
    process. The command name in parentheses may itself hold spaces and parentheses, so the
    state is read after the last ')'."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    _, _, rest = stat.rpartition(")")
    fields = rest.split()
    return fields[0] if fields else None


def command_line(pid: int, proc: Path = PROC) -> list[str]:
    """The process's argv (empty for a zombie, whose memory is gone)."""
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def alive_and_ours(pid: int, marker: str, proc: Path = PROC) -> bool:
    """True when `pid` is a live process (not a zombie, not dead) whose command line mentions
    `marker` (the component's name: `standins.paygate`, `.../paygate/__main__.py`,
    `nats-server`, `envoy` all do)."""
    state = process_state(pid, proc)
    if state is None or state in GONE_STATES:
        return False
    return any(marker in part for part in command_line(pid, proc))
