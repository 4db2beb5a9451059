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
from bench.side_by_side import alternate, overhead_row
from bench.stack import bench_stack
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
    figure = f"tracing + metrics (scraped every {SCRAPE_INTERVAL_S:g} s) on / off, orders/s"
    return [overhead_row("tracing and metrics", figure, compared)]


if __name__ == "__main__":
    rows()
