"""What metrics cost: order throughput (PlaceOrder to CONFIRMED, through the whole saga) on a
private stack with metrics off (`CONCORD_METRICS_ENABLED=false`), then on a fresh one with
metrics on and every process scraped each second, as a Prometheus would. One run of each;
prints both rates and their ratio (issue 14 wants tracing and metrics together under 10%).

    BENCH_ONLY=metrics_overhead make bench
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.request

from shop.orders.v1 import orders_pb2

from bench.rows import Row, scaled
from bench.stack import bench_stack
from runtime import catalogue
from tests.support.shop import Shop, shop_client
from tools.runner.topology import Topology

ORDERS = scaled(120, 24)
CONCURRENCY = 8
SCRAPE_INTERVAL_S = 1.0


async def _order(shop: Shop, product: str, gate: asyncio.Semaphore) -> None:
    async with gate:
        placed = await shop.place("bench", [(product, 1)])
        order = await shop.settled("bench", placed.order_id, timeout_s=60, poll_s=0.01)
        assert order.status == orders_pb2.ORDER_STATUS_CONFIRMED, order.rejection_reason


def _scrape(url: str) -> None:
    with urllib.request.urlopen(url, timeout=5) as reply:
        reply.read()


async def _scrape_every_second(urls: list[str]) -> None:
    while True:
        for url in urls:
            await asyncio.to_thread(_scrape, url)
        await asyncio.sleep(SCRAPE_INTERVAL_S)


async def throughput(topology: Topology, scraped: list[str]) -> float:
    """Confirmed orders per second, `CONCURRENCY` at a time."""
    async with shop_client(topology) as shop:
        product = await shop.product(stock=ORDERS * 2, price_minor=100)
        await shop.account("bench", ORDERS * 1_000)
        await _order(shop, product, asyncio.Semaphore(1))  # warm: channels, caches
        scraper = asyncio.create_task(_scrape_every_second(scraped)) if scraped else None
        gate = asyncio.Semaphore(CONCURRENCY)
        started = time.perf_counter()
        try:
            await asyncio.gather(*(_order(shop, product, gate) for _ in range(ORDERS)))
        finally:
            if scraper is not None:
                scraper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await scraper
        return ORDERS / (time.perf_counter() - started)


def run(metrics: bool) -> float:
    env = {"CONCORD_METRICS_ENABLED": "true" if metrics else "false"}
    with bench_stack(env, registry_env=env) as stack:
        topology = stack.topology
        urls = [topology.metrics_url(p.name) for p in catalogue.CATALOGUE] if metrics else []
        return asyncio.run(throughput(topology, urls))


def rows() -> list[Row]:
    off = run(metrics=False)
    on = run(metrics=True)
    print(f"order throughput, {ORDERS} orders {CONCURRENCY} at a time, PENDING -> CONFIRMED:")
    print(f"  metrics off: {off:.1f} orders/s")
    print(f"  metrics on (scraped every {SCRAPE_INTERVAL_S:g} s): {on:.1f} orders/s")
    print(f"  on / off: {on / off:.3f} (overhead {(1 - on / off) * 100:.1f}%)")
    return [
        Row("metrics on (scraped 1/s) / off, orders/s", on, "orders/s", off, on / off, ">= 0.9")
    ]


if __name__ == "__main__":
    rows()
