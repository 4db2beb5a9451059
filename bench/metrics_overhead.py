"""What metrics cost: saga throughput (orders placed and CONFIRMED per second) on two private
stacks, one with metrics off (`CONCORD_METRICS_ENABLED=false`), one with metrics on and every
process scraped each second during its rounds, as a Prometheus would; rounds alternate between
them (bench/side_by_side.py). Prints both rates, the CPU per order of each, and their ratio
(issue 14: tracing and metrics under 10%).

    BENCH_ONLY=metrics_overhead make bench
"""

from __future__ import annotations

import asyncio
import urllib.request
from contextlib import ExitStack

from bench.rows import Row
from bench.side_by_side import Background, alternate, overhead_row
from bench.stack import bench_stack
from runtime import catalogue

SCRAPE_INTERVAL_S = 1.0


def _scrape(url: str) -> None:
    with urllib.request.urlopen(url, timeout=5) as reply:
        reply.read()


def scraping(urls: list[str]) -> Background:
    """Every process's /metrics fetched in turn, each second, until cancelled."""

    async def every_second() -> None:
        while True:
            for url in urls:
                await asyncio.to_thread(_scrape, url)
            await asyncio.sleep(SCRAPE_INTERVAL_S)

    return every_second


def rows() -> list[Row]:
    with ExitStack() as stacks:
        running = {}
        for mode, enabled in (("off", "false"), ("on", "true")):
            env = {"CONCORD_METRICS_ENABLED": enabled}
            running[mode] = stacks.enter_context(bench_stack(env, registry_env=env))
        urls = [running["on"].topology.metrics_url(p.name) for p in catalogue.CATALOGUE]
        compared = asyncio.run(
            alternate(
                running,
                during_rounds={"on": scraping(urls)},
            )
        )
    figure = f"metrics on (scraped every {SCRAPE_INTERVAL_S:g} s) / off, orders/s"
    return [overhead_row("metrics", figure, compared)]


if __name__ == "__main__":
    rows()
