"""`python -m tools.devstack trace <order_id>`: an order's trace as an indented waterfall.

Reads the JSON-lines span files every process writes under `<data dir>/traces/` when no OTLP
endpoint is set (runtime/tracing.py) through runtime/trace_files.py, the reader the orders
admin service's GetOrderTrace (the console's waterfall) and the tests use too, so what they
check and what the console shows is what a developer sees here; this module only draws it.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import Any

from runtime.span_files import traces_dir
from runtime.trace_files import SpanRecord, order_traces_in, unreadable_reason

BAR_WIDTH = 30
"""Characters of the waterfall's timeline column."""


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
    reason = unreadable_reason(data_dir)
    if reason is not None:
        print(f"no trace to read: {reason}")
        return 1
    found = order_traces_in(data_dir, args.order_id)
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
