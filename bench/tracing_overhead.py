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
from bench.side_by_side import CONCURRENCY, ORDERS_PER_ROUND, ROUNDS, alternate
from bench.stack import bench_stack

BUDGET = 0.10
"""The most tracing may take off throughput."""


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
    off, on = compared.measured["off"], compared.measured["on"]
    ratio = on.orders_per_s / off.orders_per_s
    print(
        f"saga throughput over {ROUNDS * ORDERS_PER_ROUND} orders a mode, {CONCURRENCY} in"
        " flight, rounds alternating:"
    )
    for mode, measured in compared.measured.items():
        print(
            f"  tracing {mode}: {measured.orders_per_s:.1f} orders/s,"
            f" {measured.cpu_ms_per_order:.2f} CPU ms/order"
        )
    verdict = "within" if 1 - ratio <= BUDGET else "OVER"
    print(
        f"  on / off: {ratio:.2f} (overhead {1 - ratio:.1%}, {verdict} the {BUDGET:.0%} budget);"
        f" median of the rounds' ratios {compared.median_ratio:.2f};"
        f" CPU per order on / off {on.cpu_ms_per_order / off.cpu_ms_per_order:.2f}"
    )
    return [
        Row(
            "tracing on / off, orders/s",
            on.orders_per_s,
            "orders/s",
            off.orders_per_s,
            ratio,
            f">= {1 - BUDGET:g}",
        )
    ]


if __name__ == "__main__":
    rows()
