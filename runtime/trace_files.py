"""Reading the span files back: which spans make up an order's traces.

runtime/tracing.py writes every finished span as a JSON line under `<data dir>/traces/` when no
OTLP endpoint is set. Two readers need the same answer from those files: `python -m
tools.devstack trace <order_id>` (a waterfall in the terminal) and the orders admin service's
GetOrderTrace (the console's waterfall, through the gateway). Both read through this module, so
the terminal and the browser always show the same spans.

When OTEL_EXPORTER_OTLP_ENDPOINT is set the spans go to that collector instead and there is
nothing here to read: `TraceFiles.order_traces` says so (FAILED_PRECONDITION), naming the
collector, rather than answering NOT_FOUND for an order whose trace exists elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import FailedPreconditionError, NotFoundError
from runtime.span_files import traces_dir
from runtime.tracing import ORDER_ID, OTLP_ENDPOINT_ENV, enabled

_TRACE_ID_AT_HEAD = re.compile(rb'\{"trace_id":\s*"([0-9a-f]{32})"')
"""Where a line of runtime/span_files.py starts: its trace id."""


@dataclass(frozen=True)
class SpanRecord:
    """One span as runtime/tracing.py's JsonLinesExporter wrote it."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    service: str
    start_ns: int
    end_ns: int
    status: str
    attributes: dict[str, Any] = field(default_factory=dict)
    links: tuple[tuple[str, str], ...] = ()

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @classmethod
    def parse(cls, line: str) -> SpanRecord:
        raw = json.loads(line)
        return cls(
            trace_id=raw["trace_id"],
            span_id=raw["span_id"],
            parent_span_id=raw.get("parent_span_id"),
            name=raw["name"],
            kind=raw["kind"],
            service=raw.get("service") or "?",
            start_ns=int(raw["start_ns"]),
            end_ns=int(raw["end_ns"]),
            status=raw.get("status", "UNSET"),
            attributes=dict(raw.get("attributes") or {}),
            links=tuple((x["trace_id"], x["span_id"]) for x in raw.get("links") or []),
        )


def load_spans(data_dir: Path) -> list[SpanRecord]:
    """Every span every process of the stack in `data_dir` has written so far; a line still
    being written (a process killed mid-write) is skipped."""
    return list(_parsed(_lines(sorted(traces_dir(data_dir).glob("*.jsonl")), lambda _: True)))


def order_traces_in(data_dir: Path, order_id: str) -> dict[str, list[SpanRecord]]:
    """`order_traces` of the span files in `data_dir`, without parsing every span they hold.

    The files keep up to 128 MiB a process (runtime/span_files.py), hundreds of thousands of
    spans, and the console asks for one order's trace: parsing them all took seconds of the
    orders process's CPU per click. Two passes over the raw lines parse only what can match:
    first the lines with the order's id in them (its attribute then checked), then the lines of
    those traces (the trace id read at the head of the line)."""
    paths = sorted(traces_dir(data_dir).glob("*.jsonl"))
    named = json.dumps(order_id)[1:-1].encode()  # the id as it is written inside a line
    ids = {
        span.trace_id
        for span in _parsed(_lines(paths, lambda line: named in line))
        if span.attributes.get(ORDER_ID) == order_id
    }
    if not ids:
        return {}
    wanted = {trace_id.encode() for trace_id in ids}

    def in_wanted_trace(line: bytes) -> bool:
        head = _TRACE_ID_AT_HEAD.match(line)
        return head is None or head.group(1) in wanted  # a line of another shape: parsed whole

    return order_traces(_parsed(_lines(paths, in_wanted_trace)), order_id)


def _lines(paths: Iterable[Path], keep: Callable[[bytes], bool]) -> Iterator[bytes]:
    for path in paths:
        try:
            with path.open("rb") as lines:
                yield from (line for line in lines if keep(line))
        except FileNotFoundError:  # rotated or pruned since the folder was listed
            continue


def _parsed(lines: Iterable[bytes]) -> Iterator[SpanRecord]:
    for line in lines:
        try:
            yield SpanRecord.parse(line.decode("utf-8"))
        except (ValueError, KeyError):  # a line still being written (a process killed mid-write)
            continue


def order_traces(spans: Iterable[SpanRecord], order_id: str) -> dict[str, list[SpanRecord]]:
    """{trace id: its spans, by start time} for every trace that served `order_id`, the trace
    the order was placed in first."""
    spans = list(spans)
    ids = {s.trace_id for s in spans if s.attributes.get(ORDER_ID) == order_id}
    by_trace: dict[str, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        if span.trace_id in ids:
            by_trace[span.trace_id].append(span)
    for members in by_trace.values():
        members.sort(key=lambda s: s.start_ns)
    return dict(sorted(by_trace.items(), key=lambda item: item[1][0].start_ns))


def unreadable_reason(data_dir: Path) -> str | None:
    """Why the span files cannot hold any trace, or None when they can: spans sent to an OTLP
    collector, tracing turned off, or no process of this data folder has written one yet."""
    endpoint = os.environ.get(OTLP_ENDPOINT_ENV)
    if endpoint:
        return (
            f"spans go to the OTLP collector at {endpoint} ({OTLP_ENDPOINT_ENV} is set), not to"
            " span files: read the trace in that backend (Jaeger, Tempo, ...)"
        )
    if not enabled():
        return "tracing is off (CONCORD_TRACING=off): no spans are recorded"
    if not traces_dir(data_dir).is_dir():
        return f"no span files under {traces_dir(data_dir)} yet"
    return None


@dataclass(frozen=True)
class TraceFiles:
    """The span files of the processes sharing one data folder (the dev topology), as a query
    a service can answer without blocking its event loop."""

    data_dir: Path

    async def order_traces(self, order_id: str) -> dict[str, list[SpanRecord]]:
        """The order's traces; FailedPreconditionError when spans are not in files here,
        NotFoundError when no span names the order."""
        reason = unreadable_reason(self.data_dir)
        if reason is not None:
            raise FailedPreconditionError("TRACES_NOT_IN_FILES", reason)
        found = await asyncio.to_thread(order_traces_in, self.data_dir, order_id)
        if not found:
            raise NotFoundError("trace of order", order_id)
        return found
