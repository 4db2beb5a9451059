"""`python -m tools.devstack trace <order_id>`: an order's trace as an indented waterfall.

Reads the JSON-lines span files every process writes under `<data dir>/traces/` when no OTLP
endpoint is set (runtime/tracing.py), finds the traces holding a span whose `order.id` is the
order, and prints each span under its parent with its start offset and duration. Tests read
traces through `load_spans` and `order_traces` too, so what they check is what a developer sees.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BAR_WIDTH = 30
"""Characters of the waterfall's timeline column."""


@dataclass(frozen=True)
class SpanRecord:
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


def traces_dir(data_dir: Path) -> Path:
    return data_dir / "traces"


def load_spans(data_dir: Path) -> list[SpanRecord]:
    """Every span every process of the stack in `data_dir` has written so far; a line still
    being written (a process killed mid-write) is skipped."""
    spans: list[SpanRecord] = []
    for path in sorted(traces_dir(data_dir).glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                spans.append(SpanRecord.parse(line))
            except (ValueError, KeyError):
                continue
    return spans


def order_traces(spans: Iterable[SpanRecord], order_id: str) -> dict[str, list[SpanRecord]]:
    """{trace id: its spans, by start time} for every trace that served `order_id`, the trace
    the order was placed in first."""
    spans = list(spans)
    ids = {s.trace_id for s in spans if s.attributes.get("order.id") == order_id}
    by_trace: dict[str, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        if span.trace_id in ids:
            by_trace[span.trace_id].append(span)
    for members in by_trace.values():
        members.sort(key=lambda s: s.start_ns)
    return dict(sorted(by_trace.items(), key=lambda item: item[1][0].start_ns))


def waterfall(spans: list[SpanRecord]) -> list[str]:
    """One line per span, children indented under their parent, with a bar placing the span on
    the trace's timeline, its offset from the trace's start and its duration."""
    if not spans:
        return []
    start = min(s.start_ns for s in spans)
    total = max(max(s.end_ns for s in spans) - start, 1)
    known = {s.span_id for s in spans}
    children: dict[str | None, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        parent = span.parent_span_id if span.parent_span_id in known else None
        children[parent].append(span)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for span in sorted(children[parent], key=lambda s: s.start_ns):
            first = int((span.start_ns - start) / total * BAR_WIDTH)
            width = max(1, round((span.end_ns - span.start_ns) / total * BAR_WIDTH))
            bar = (" " * first + "█" * width)[:BAR_WIDTH].ljust(BAR_WIDTH)
            error = "  ERROR" if span.status == "ERROR" else ""
            lines.append(
                f"{(span.start_ns - start) / 1e6:9.1f} ms {span.duration_ms:9.1f} ms |{bar}| "
                f"{'  ' * depth}{span.name} [{span.service}]{error}"
            )
            walk(span.span_id, depth + 1)

    walk(None, 0)
    return lines


def add_commands(commands: Any) -> None:
    trace = commands.add_parser("trace", help="print an order's trace as a waterfall")
    trace.add_argument("order_id", help="the order id, e.g. ord_...")


def run(args: argparse.Namespace, data_dir: Path) -> int:
    if not traces_dir(data_dir).is_dir():
        print(
            f"no span files under {traces_dir(data_dir)}: is the stack running with tracing on"
            " and without OTEL_EXPORTER_OTLP_ENDPOINT (which sends spans to a collector)?"
        )
        return 1
    found = order_traces(load_spans(data_dir), args.order_id)
    if not found:
        print(f"no trace has a span for order {args.order_id} under {traces_dir(data_dir)}")
        return 1
    for trace_id, spans in found.items():
        services = sorted({s.service for s in spans})
        print(f"trace {trace_id}: {len(spans)} spans across {', '.join(services)}")
        print(f"{'start':>12} {'duration':>12}")
        for line in waterfall(spans):
            print(line)
        print()
    return 0
