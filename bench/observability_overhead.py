"""What tracing and metrics cost together (issue 14: under 10% of saga throughput): two private
stacks, one with both off (CONCORD_TRACING=off, CONCORD_METRICS_ENABLED=false), one with every
order traced to the span files and every process's /metrics scraped each second during its
rounds, as a Prometheus would; rounds alternate between them (bench/side_by_side.py). The
figures of each alone are bench/tracing_overhead.py and bench/metrics_overhead.py.

    BENCH_ONLY=observability_overhead make bench
"""

from __future__ import annotations

import asyncio
from contextlib import ExitStack

from bench.metrics_overhead import SCRAPE_INTERVAL_S, scraping
from bench.rows import Row
from bench.side_by_side import CONCURRENCY, ORDERS_PER_ROUND, ROUNDS, alternate
from bench.stack import bench_stack
from bench.tracing_overhead import BUDGET
from runtime import catalogue

MODES = {
    "off": {"CONCORD_TRACING": "off", "CONCORD_METRICS_ENABLED": "false"},
    "on": {"CONCORD_TRACING": "on", "CONCORD_METRICS_ENABLED": "true"},
}


def rows() -> list[Row]:
    with ExitStack() as stacks:
        running = {
            mode: stacks.enter_context(bench_stack(env, registry_env=env))
            for mode, env in MODES.items()
        }
        urls = [running["on"].topology.metrics_url(p.name) for p in catalogue.CATALOGUE]
        compared = asyncio.run(alternate(running, during_rounds={"on": scraping(urls)}))
    off, on = compared.measured["off"], compared.measured["on"]
    ratio = on.orders_per_s / off.orders_per_s
    print(
        f"saga throughput over {ROUNDS * ORDERS_PER_ROUND} orders a mode, {CONCURRENCY} in"
        " flight, rounds alternating:"
    )
    for mode, measured in compared.measured.items():
        print(
            f"  tracing and metrics {mode}: {measured.orders_per_s:.1f} orders/s,"
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
            f"tracing + metrics (scraped every {SCRAPE_INTERVAL_S:g} s) on / off, orders/s",
            on.orders_per_s,
            "orders/s",
            off.orders_per_s,
            ratio,
            f">= {1 - BUDGET:g}",
        )
    ]


if __name__ == "__main__":
    rows()
