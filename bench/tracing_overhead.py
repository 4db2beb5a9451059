"""What tracing costs: saga throughput (orders placed and CONFIRMED per second, through
inventory and payments over JetStream and the PayGate stand-in) on two private stacks, one with
tracing off (CONCORD_TRACING=off), one with it on (spans to the JSON-lines files), rounds
alternating between them (bench/side_by_side.py); prints both rates, the CPU each order cost
the stack, and the throughput ratio against the 10% budget.

    BENCH_ONLY=tracing_overhead make bench
"""

from __future__ import annotations

import asyncio
from contextlib import ExitStack

from bench.rows import Row
from bench.side_by_side import alternate, overhead_row
from bench.stack import bench_stack


def rows() -> list[Row]:
    with ExitStack() as stacks:
        running = {}
        for mode in ("off", "on"):
            env = {"CONCORD_TRACING": mode}
            running[mode] = stacks.enter_context(bench_stack(env, registry_env=env))
        compared = asyncio.run(alternate(running))
        for mode, stack in running.items():
            spans = list((stack.topology.data_dir / "traces").glob("*.jsonl"))
            assert bool(spans) == (mode == "on"), f"tracing {mode}, span files {spans}"
    return [overhead_row("tracing", "tracing on / off, orders/s", compared)]


if __name__ == "__main__":
    rows()
