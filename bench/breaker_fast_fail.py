"""How fast a call fails once its breaker is open, against how long a failure takes when it
has to wait for its deadline. One run, ratios printed; no assertions.

    make bench   (or: PYTHONPATH=.:bazel-bin/proto .venv/bin/python -m bench.breaker_fast_fail)
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

from runtime import logs
from runtime.clients import CallPolicy, ServiceClient, StaticResolver
from runtime.errors import DependencyUnavailableError
from runtime.server import SERVER_OPTIONS
from tools.runner.ports import free_port

DEADLINE_S = 0.2
FAIL_MAX = 3
OPEN_CALLS = 2_000


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


async def main() -> None:
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

    p50, p99 = statistics.median(fast), fast[int(len(fast) * 0.99)]
    slow = statistics.median(deadline_bound)
    print(f"deadline-bound failure (breaker closed): median {slow:.1f} ms over {FAIL_MAX} calls")
    print(f"open-breaker failure: median {p50:.3f} ms, p99 {p99:.3f} ms over {OPEN_CALLS} calls")
    print(f"ratio deadline-bound / open-breaker (median): {slow / p50:.0f}x")
    print(f"open-breaker p99 against the 50 ms budget: {p99 / 50:.4f} of it")


if __name__ == "__main__":
    asyncio.run(main())
