"""`python -m tools.devstack logs [process] [-f] [--lines N] [--order ID]`: the JSON logs under
`.data/logs/` as one readable line an entry, from every process merged by time or from one.

A service's line `{"ts": ..., "level": ..., "service": ..., "event": ..., "order_id": ...}`
becomes `10:59:15.267 orders   INFO  order_confirmed  order=ord_1 trace=4bf9...  lines=2`:
time, process, level, event, then the order and trace ids (the fields a person follows across
processes), then the other fields as key=value. Envoy's access log lines (JSON with `time`,
`method`, `path`, `status`) read the same way; lines that are not JSON (nats-server, Envoy's own
messages) are printed as they are, after the process name.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

FOLLOW_POLL_S = 0.25
DEFAULT_LINES = 50
ID_FIELDS = (("order_id", "order"), ("trace_id", "trace"), ("request_id", "request"))
"""Printed first, shortened names, in this order."""
HEADER_FIELDS = {"ts", "time", "level", "service", "event", "exception"}
TEXT_TIME = re.compile(r"(\d{4})[-/](\d\d)[-/](\d\d)[ T](\d\d:\d\d:\d\d\.\d{3})")
"""The time in nats-server's and Envoy's own lines, read so they merge in order (UTC)."""
NAME_WIDTH = 10


@dataclass(frozen=True)
class Entry:
    process: str
    ts: str
    """ISO time, or "" when the line carries none (sorted as it came, after a timed line)."""
    text: str
    fields: dict[str, Any]


def add_command(commands: Any) -> None:
    logs = commands.add_parser("logs", help="pretty-print the JSON logs (.data/logs) with ids")
    logs.add_argument("process", nargs="?", help="one process (registry, orders, envoy, ...)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument(
        "--lines", type=int, default=DEFAULT_LINES, help="how many of each log's last lines"
    )
    logs.add_argument("--order", help="only lines about this order id")


def parse(process: str, line: str, previous_ts: str = "") -> Entry:
    try:
        value = json.loads(line)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        found = TEXT_TIME.search(line)
        ts = "{}-{}-{}T{}Z".format(*found.groups()) if found else previous_ts
        return Entry(process, ts, line.rstrip("\n"), {})
    ts = str(value.get("ts") or value.get("time") or previous_ts)
    return Entry(process, ts, line, value)


def render(entry: Entry) -> str:
    name = entry.process.ljust(NAME_WIDTH)
    clock = entry.ts[11:23].ljust(12)
    if not entry.fields:
        return f"{clock} {name}{entry.text}"
    f = entry.fields
    if "event" in f:
        head, shown = f"{str(f.get('level', '')).upper():<7} {f['event']}", HEADER_FIELDS
    else:  # Envoy's access log
        head = f"ACCESS  {f.get('method')} {f.get('path')} -> {f.get('status')}"
        shown = HEADER_FIELDS | {"method", "path", "status"}
    ids = [f"{short}={f[key]}" for key, short in ID_FIELDS if f.get(key) not in (None, "", "-")]
    rest = [
        f"{k}={json.dumps(v) if isinstance(v, str) and ' ' in v else v}"
        for k, v in f.items()
        if k not in shown and k not in dict(ID_FIELDS) and v not in (None, "", "-")
    ]
    parts = (f"{clock} {name}{head}", " ".join(ids), " ".join(rest))
    line = "  ".join(part for part in parts if part)
    if "exception" in f:
        line += "\n" + "\n".join(f"    {x}" for x in str(f["exception"]).splitlines())
    return line


def about_order(entry: Entry, order_id: str | None) -> bool:
    return order_id is None or entry.fields.get("order_id") == order_id or order_id in entry.text


def read_entries(process: str, lines: Iterable[str]) -> list[Entry]:
    entries: list[Entry] = []
    for line in lines:
        if line.strip():
            entries.append(parse(process, line, entries[-1].ts if entries else ""))
    return entries


def log_files(log_dir: Path, process: str | None) -> list[Path]:
    if process is not None:
        path = log_dir / f"{process}.log"
        if not path.exists():
            known = ", ".join(sorted(p.stem for p in log_dir.glob("*.log"))) or "none"
            raise FileNotFoundError(f"no log for {process!r} in {log_dir} (logs there: {known})")
        return [path]
    files = sorted(log_dir.glob("*.log"))
    if not files:
        raise FileNotFoundError(f"no logs in {log_dir}: has `make up` run?")
    return files


def follow(files: list[Path], out: TextIO, order_id: str | None) -> None:
    """Prints new lines of every file as they are written, until Ctrl-C."""
    offsets = {path: path.stat().st_size for path in files}
    while True:
        for path in files:
            size = path.stat().st_size
            if size < offsets[path]:  # truncated or replaced: start again
                offsets[path] = 0
            if size > offsets[path]:
                with path.open("rb") as f:
                    f.seek(offsets[path])
                    chunk = f.read()
                complete = chunk[: chunk.rfind(b"\n") + 1]
                offsets[path] += len(complete)
                lines = complete.decode(errors="replace").splitlines()
                for entry in read_entries(path.stem, lines):
                    if about_order(entry, order_id):
                        print(render(entry), file=out, flush=True)
        time.sleep(FOLLOW_POLL_S)


def show(args: argparse.Namespace, log_dir: Path, out: TextIO = sys.stdout) -> int:
    try:
        files = log_files(log_dir, args.process)
    except FileNotFoundError as error:
        print(f"logs: {error}", file=sys.stderr)
        return 1
    entries: list[Entry] = []
    for path in files:
        tail = path.read_text(errors="replace").splitlines()[-args.lines :]
        entries += [e for e in read_entries(path.stem, tail) if about_order(e, args.order)]
    # Merged by time; sorted() is stable, so lines without a time keep their place.
    for entry in sorted(entries, key=lambda e: e.ts):
        print(render(entry), file=out)
    if args.follow:
        with contextlib.suppress(KeyboardInterrupt):
            follow(files, out, args.order)
    return 0
