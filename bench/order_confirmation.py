"""How long an order takes from PlaceOrder (PENDING) to CONFIRMED, through the whole saga
(inventory and payments over JetStream, the PayGate stand-in), on a private stack on free
ports. One run; prints the distribution and its ratio to the one-second target.

    BENCH_ONLY=order_confirmation make bench
"""

from __future__ import annotations

import asyncio
import statistics
import time

from shop.orders.v1 import orders_pb2

from bench.rows import Row, scaled
from bench.stack import bench_stack
from tests.support.shop import shop_client
from tools.runner.topology import Topology

ORDERS = scaled(50, 10)
TARGET_S = 1.0
POLL_S = 0.002


async def measure(topology: Topology) -> list[float]:
    latencies = []
    async with shop_client(topology) as shop:
        product = await shop.product(stock=ORDERS * 2, price_minor=100)
        await shop.account("bench", ORDERS * 1_000)
        for _ in range(ORDERS):
            started = time.perf_counter()
            placed = await shop.place("bench", [(product, 1)])
            order = await shop.settled("bench", placed.order_id, timeout_s=30, poll_s=POLL_S)
            assert order.status == orders_pb2.ORDER_STATUS_CONFIRMED, order.rejection_reason
            latencies.append(time.perf_counter() - started)
    return latencies


def rows() -> list[Row]:
    with bench_stack() as stack:
        latencies = sorted(asyncio.run(measure(stack.topology)))
    median, p90 = statistics.median(latencies), latencies[int(len(latencies) * 0.9)]
    print(
        f"PENDING -> CONFIRMED over {ORDERS} sequential orders (polled every {POLL_S * 1000:g} ms):"
    )
    print(
        f"  median {median * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
    )
    print(
        f"  median / one-second target: {median / TARGET_S:.2f}; p90 / target: {p90 / TARGET_S:.2f}"
    )
    return [
        Row(
            "PENDING -> CONFIRMED p90, one order at a time / 1 s",
            p90,
            "s",
            TARGET_S,
            p90 / TARGET_S,
            "<= 1",
        )
    ]


if __name__ == "__main__":
    rows()
