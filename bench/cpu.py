"""CPU time of processes from /proc (utime + stime, children excluded), so a figure can say
what each order cost the whole stack, process by process."""

from __future__ import annotations

import os
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """Seconds of CPU `pid` has used so far; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # utime, stime (fields 14, 15)


def rss_bytes(pid: int) -> int:
    """Resident memory of `pid`; 0 once it is gone."""
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except FileNotFoundError:
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def snapshot(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_s(pid) for name, pid in pids.items()}


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each process used between two snapshots."""
    return {name: after[name] - before.get(name, 0.0) for name in after}
