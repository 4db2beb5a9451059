"""`make bench`: every figure of issue 15 measured in one run, side by side, and printed as one
table (figure, measured, baseline, ratio, target, met?), written as JSON and drawn as a PNG
under .data/bench/ (git-ignored).

    make bench                       # the whole run (the soak alone takes BENCH_SOAK_S)
    BENCH_QUICK=1 make bench         # a smoke run of every figure, a couple of minutes
    BENCH_ONLY=gateway_cost make bench   # some modules only (comma-separated)

Each module in FIGURES exposes `rows() -> list[bench.rows.Row]`. A module that is not in this
tree (OPTIONAL) is skipped with a note; one that fails is reported and the others still run.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
import traceback
from pathlib import Path

from bench.report import RESULTS_DIR, draw_png, table, write_json
from bench.rows import Row

FIGURES = (
    "bench.saga_throughput",  # orders CONFIRMED/s vs JetStream round trips/s; CPU per order
    "bench.gateway_cost",  # GetOrder through Envoy against gRPC direct (h2load)
    "bench.outbox_relay",  # relay messages/s against nats-py with a window of acks in flight
    "bench.consumer_batch",  # consumer messages applied/s at batch 1 against batch 64
    "bench.saga_batching",  # orders/s and CPU per order: window + batches against one by one
    "bench.order_snapshots",  # order load time with snapshots every 100 events against none
    "bench.discovery_convergence",  # kill -9 until Envoy stops routing to the instance
    "bench.order_confirmation",  # PENDING -> CONFIRMED latency against one second
    "bench.breaker_fast_fail",
    "bench.metrics_overhead",
    "bench.tracing_overhead",
    "bench.observability_overhead",  # tracing and metrics together against both off
    "bench.soak",  # slopes of disk, memory and p99 over a bounded run at 80% of the maximum
)
OPTIONAL: frozenset[str] = frozenset()
"""Figures that may be missing from a tree (built on a branch not merged yet): skipped with a
note instead of failing the run."""
ONLY_ENV = "BENCH_ONLY"


def selected() -> list[str]:
    only = {
        f"bench.{name.strip()}" for name in os.environ.get(ONLY_ENV, "").split(",") if name.strip()
    }
    return [module for module in FIGURES if not only or module in only]


def collect(
    modules: list[str], optional: frozenset[str] = OPTIONAL
) -> tuple[list[Row], list[str], bool]:
    """Every module's rows, in order; notes on what was skipped or failed; whether all ran."""
    rows: list[Row] = []
    notes: list[str] = []
    healthy = True
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as missing:
            if name in optional and missing.name == name:
                notes.append(f"{name}: not in this tree, skipped")
                print(f"bench: {notes[-1]}", file=sys.stderr)
                continue
            raise
        started = time.perf_counter()
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        try:
            found = module.rows()
        except Exception as error:  # one broken figure must not cost the others their run
            healthy = False
            first_line = next(iter(str(error).strip().splitlines()), "")
            notes.append(f"{name}: FAILED ({type(error).__name__}: {first_line})")
            traceback.print_exc()
            continue
        print(f"bench: {name} took {time.perf_counter() - started:.0f} s", file=sys.stderr)
        rows.extend(found)
    return rows, notes, healthy


def publish(rows: list[Row], notes: list[str], results: Path) -> None:
    print(table(rows))
    for note in notes:
        print(f"note: {note}")
    print(f"written: {write_json(rows, results / 'bench.json', notes)}")
    print(f"drawn:   {draw_png(rows, results / 'bench.png')}")


def main() -> int:
    rows, notes, healthy = collect(selected())
    publish(rows, notes, RESULTS_DIR)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
