"""How fast a call fails once its breaker is open, against how long a failure takes when it
has to wait for its deadline. One run, ratios printed; no assertions.

    BENCH_ONLY=breaker_fast_fail make bench
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time

import grpc
from shop.inventory.v1 import inventory_service_pb2 as inv
from shop.inventory.v1.inventory_service_pb2_grpc import InventoryServiceStub

from bench.rows import Row, scaled
from runtime import logs
from runtime.clients import CallPolicy, ServiceClient, StaticResolver
from runtime.errors import DependencyUnavailableError
from runtime.server import SERVER_OPTIONS
from tools.runner.ports import free_port

DEADLINE_S = 0.2
FAIL_MAX = 3
OPEN_CALLS = scaled(2_000, 200)


async def hang(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await asyncio.Event().wait()  # an upstream that accepts the call and never answers
    return b""


async def timed_failure(client: ServiceClient[InventoryServiceStub]) -> float:
    started = time.perf_counter()
    with contextlib.suppress(DependencyUnavailableError):
        await client.call(
            lambda inventory: inventory.BatchGetProducts,
            inv.BatchGetProductsRequest(product_ids=["p"]),
        )
    return (time.perf_counter() - started) * 1000


async def measure() -> tuple[float, float, float]:
    """Median deadline-bound failure, median and p99 open-breaker failure, in ms."""
    logs.configure("bench", level=logging.ERROR)
    port = free_port()
    server = grpc.aio.server(options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "shop.inventory.v1.InventoryService",
                {"BatchGetProducts": grpc.unary_unary_rpc_method_handler(hang)},
            )
        ]
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    client = ServiceClient(
        "inventory",
        StaticResolver(f"127.0.0.1:{port}"),
        CallPolicy(deadline_s=DEADLINE_S, breaker_fail_max=FAIL_MAX, breaker_reset_timeout_s=600),
        InventoryServiceStub,
    )
    deadline_bound = [await timed_failure(client) for _ in range(FAIL_MAX)]
    assert client.breaker.state == "OPEN"
    fast = sorted([await timed_failure(client) for _ in range(OPEN_CALLS)])
    await client.close()
    await server.stop(0)

    return statistics.median(deadline_bound), statistics.median(fast), fast[int(len(fast) * 0.99)]


def rows() -> list[Row]:
    slow, p50, p99 = asyncio.run(measure())
    print(f"deadline-bound failure (breaker closed): median {slow:.1f} ms over {FAIL_MAX} calls")
    print(f"open-breaker failure: median {p50:.3f} ms, p99 {p99:.3f} ms over {OPEN_CALLS} calls")
    print(f"ratio deadline-bound / open-breaker (median): {slow / p50:.0f}x")
    print(f"open-breaker p99 against the 50 ms budget: {p99 / 50:.4f} of it")
    return [
        Row("breaker: open-breaker failure p99 / 50 ms budget", p99, "ms", 50.0, p99 / 50, "<= 1"),
        Row(
            "breaker: open-breaker median / deadline-bound failure",
            p50,
            "ms",
            slow,
            p50 / slow,
            None,
        ),
    ]


if __name__ == "__main__":
    rows()
