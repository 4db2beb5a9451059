"""Writing spans to JSON-lines files when no OTLP endpoint is set (runtime/trace_files.py reads
them): one file per process, `<service>.<pid>.jsonl` under the data folder's `traces/`, so
instances sharing a folder never interleave lines, bounded on disk:

- a file that reaches CONCORD_TRACE_FILE_MAX_MIB (default 64) becomes `<service>.<pid>.previous.jsonl`
  (replacing the one before) and a new one starts, so a process keeps at most twice that;
- files of processes that have ended are kept for `devstack trace` after a crash or a
  restart, the newest ENDED_FILES_KEPT of each service; older ones are removed when a process
  of that service starts.

At a hundred orders a second the stack writes about a megabyte of spans a second: without
these bounds the default configuration would fill the disk, as issue 15 says of every store.
Our own, not an SDK exporter: OpenTelemetry's Python SDK writes spans to files only through
its console exporter, one pretty-printed JSON document per span, with no rotation.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from runtime.settings import env_int

MAX_FILE_MIB_ENV = "CONCORD_TRACE_FILE_MAX_MIB"
DEFAULT_MAX_FILE_MIB = 64
ENDED_FILES_KEPT = 4
"""Files of ended processes kept per service (a `.previous` file counts as one)."""
PREVIOUS = ".previous"

_encode = json.JSONEncoder(default=str).encode
"""One encoder for every span: json.dumps(default=...) would build a new one per call."""
_KIND_NAMES = {kind: kind.name for kind in SpanKind}
_STATUS_NAMES = {code: code.name for code in StatusCode}


def traces_dir(data_dir: Path) -> Path:
    return data_dir / "traces"


def max_file_bytes() -> int:
    mib = env_int(MAX_FILE_MIB_ENV, DEFAULT_MAX_FILE_MIB)
    if mib < 1:
        raise ValueError(f"{MAX_FILE_MIB_ENV}={mib}: a span file needs at least 1 MiB")
    return mib * 2**20


class JsonLinesExporter(SpanExporter):
    """One JSON object a line per finished span: ids in hex, times in Unix nanoseconds. It runs
    on the batch processor's thread, holding the GIL while it formats: what is the same for
    every span (the service, enum names) is looked up once."""

    def __init__(
        self, folder: Path, service: str, pid: int, max_bytes: int, ended_kept: int
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        prune_ended(folder, service, ended_kept)
        self.path = folder / f"{service}.{pid}.jsonl"
        self._max_bytes = max_bytes
        self._file = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self._service = _encode(service)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join([self.line(s) for s in spans])
        with self._lock:
            self._file.write(lines)
            self._file.flush()
            if self._file.tell() >= self._max_bytes:
                self._rotate()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._file.close()

    def _rotate(self) -> None:
        self._file.close()
        os.replace(self.path, previous_of(self.path))
        self._file = self.path.open("a", encoding="utf-8")

    def line(self, span: ReadableSpan) -> str:
        """The span's JSON line: the fixed fields formatted in place, only the name and the
        attributes' keys and values through the JSON encoder (half the time of encoding one
        dict of it all)."""
        ctx = span.context
        parent = f'"{span.parent.span_id:016x}"' if span.parent else "null"
        attributes = span.attributes
        links = ",".join(
            f'{{"trace_id":"{link.context.trace_id:032x}","span_id":"{link.context.span_id:016x}"}}'
            for link in span.links
        )
        return (
            f'{{"trace_id":"{ctx.trace_id:032x}","span_id":"{ctx.span_id:016x}",'
            f'"parent_span_id":{parent},'
            f'"name":{_encode(span.name)},"kind":"{_KIND_NAMES[span.kind]}",'
            f'"service":{self._service},"start_ns":{span.start_time},"end_ns":{span.end_time},'
            f'"status":"{_STATUS_NAMES[span.status.status_code]}",'
            f'"attributes":{_object(attributes) if attributes else "{}"},"links":[{links}]}}\n'
        )


def _object(attributes: Mapping[str, object]) -> str:
    """A flat mapping as a JSON object, each key and value through the encoder's own fast
    path: 40% less time than encoding the mapping whole, which sets up an encoder per call."""
    return (
        "{"
        + ",".join([f"{_encode(key)}:{_encode(value)}" for key, value in attributes.items()])
        + "}"
    )


def previous_of(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".jsonl") + PREVIOUS + ".jsonl")


def prune_ended(folder: Path, service: str, kept: int) -> list[Path]:
    """Removes all but the newest `kept` span files of `service`'s ended processes (a process
    on this machine that is still running keeps its files); returns what it removed."""
    ended = [path for path in folder.glob(f"{service}.*.jsonl") if not _running(path, service)]
    ended.sort(key=_modified, reverse=True)
    removed = []
    for path in ended[kept:]:
        try:
            path.unlink()
        except FileNotFoundError:  # another instance of the service pruned it first
            continue
        removed.append(path)
    return removed


def _running(path: Path, service: str) -> bool:
    pid = path.name.removeprefix(f"{service}.").removesuffix(".jsonl").removesuffix(PREVIOUS)
    if not pid.isdigit():
        return True  # not a name this module writes: leave it alone
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
