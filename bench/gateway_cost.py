"""What the gateway costs a read: GetOrder of one confirmed order, driven by h2load, through
Envoy (REST, transcoded; and native gRPC) against gRPC straight to orders, on one stack.

- mean latency at one stream (one connection, one request at a time): REST via Envoy / direct
  (issue 15: <= 1.4) and gRPC via Envoy / direct (<= 1.3);
- requests per second at saturation, 4 connections x 16 streams: REST via Envoy / direct
  (>= 0.9), and gRPC via Envoy / direct for comparison.

The modes run in alternating rounds, so a neighbour's burst of load on the shared machine
falls on all of them alike. The gateway's rate limits are lifted (bench/stack.py); every
filter still runs. Direct calls carry `x-customer-id` as the gateway would set it.

    BENCH_ONLY=gateway_cost make bench
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

import grpc
from shop.orders.v1 import orders_service_pb2, orders_service_pb2_grpc

from bench import h2load
from bench.rows import Row, scaled
from bench.stack import BENCH_GATEWAY, BenchStack, bench_stack
from tests.support.gateway import call
from tests.support.shop import shop_client
from tools.runner.tokens import mint_dev_token

CUSTOMER = "bench"
GET_ORDER = "/shop.orders.v1.OrdersService/GetOrder"
SATURATION = {"connections": 4, "streams": 16}
GRPC_HEADERS = {"content-type": "application/grpc", "te": "trailers"}


async def confirmed_order(stack: BenchStack) -> str:
    async with shop_client(stack.topology) as shop:
        product = await shop.product(stock=10, price_minor=100)
        await shop.account(CUSTOMER, 10_000)
        placed = await shop.place(CUSTOMER, [(product, 1)])
        await shop.settled(CUSTOMER, placed.order_id, timeout_s=60, poll_s=0.05)
        return str(placed.order_id)


async def check_grpc_through_gateway(address: str, token: str, order_id: str) -> None:
    """h2load cannot see grpc-status: one real call first proves the body and headers work."""
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await orders_service_pb2_grpc.OrdersServiceStub(channel).GetOrder(
            orders_service_pb2.GetOrderRequest(order_id=order_id),
            metadata=(("authorization", f"Bearer {token}"),),
            timeout=10,
        )
    assert reply.order.order_id == order_id


def measure(stack: BenchStack, folder: Path) -> dict[str, list[h2load.Load]]:
    assert stack.gateway is not None
    order_id = asyncio.run(confirmed_order(stack))
    token = mint_dev_token(Path.cwd(), CUSTOMER)
    asyncio.run(
        check_grpc_through_gateway(f"127.0.0.1:{stack.topology.gateway_port}", token, order_id)
    )
    rest = call(stack.gateway, "GET", f"/v1/orders/{order_id}", token=token)
    assert rest.status == 200, rest.body
    body = h2load.grpc_body(orders_service_pb2.GetOrderRequest(order_id=order_id), folder)
    direct = f"http://{stack.topology.address('orders')}{GET_ORDER}"
    gateway = f"http://127.0.0.1:{stack.topology.gateway_port}"
    bearer = {"authorization": f"Bearer {token}"}
    modes = {
        "direct": dict(url=direct, headers={**GRPC_HEADERS, "x-customer-id": CUSTOMER}, body=body),
        "envoy_grpc": dict(url=gateway + GET_ORDER, headers={**GRPC_HEADERS, **bearer}, body=body),
        "envoy_rest": dict(url=f"{gateway}/v1/orders/{order_id}", headers=bearer, body=None),
    }
    one, many = scaled(3000, 300), scaled(20_000, 2000)
    for mode in modes.values():  # warm: connections, caches, the JIT-less but cold paths
        h2load.run(**mode, requests=200)  # type: ignore[arg-type]
    results: dict[str, list[h2load.Load]] = defaultdict(list)
    for round_ in range(scaled(3, 1)):
        order = list(modes) if round_ % 2 == 0 else list(reversed(modes))
        for name in order:
            results[f"{name}_one"].append(h2load.run(**modes[name], requests=one))  # type: ignore[arg-type]
            results[f"{name}_sat"].append(
                h2load.run(**modes[name], requests=many, **SATURATION)  # type: ignore[arg-type]
            )
    return results


def rows() -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp, bench_stack(gateway=BENCH_GATEWAY) as stack:
        results = measure(stack, Path(tmp))
    latency = {k: statistics.mean(x.mean_latency_s for x in v) * 1000 for k, v in results.items()}
    rate = {k: statistics.mean(x.requests_per_s for x in v) for k, v in results.items()}
    for name in ("direct", "envoy_grpc", "envoy_rest"):
        print(
            f"gateway: {name}: one stream {latency[name + '_one']:.3f} ms mean;"
            f" 4x16 streams {rate[name + '_sat']:.0f} req/s"
        )
    direct_ms, direct_rps = latency["direct_one"], rate["direct_sat"]
    return [
        Row(
            "GetOrder mean latency, 1 stream: REST via Envoy / gRPC direct",
            latency["envoy_rest_one"],
            "ms",
            direct_ms,
            latency["envoy_rest_one"] / direct_ms,
            "<= 1.4",
        ),
        Row(
            "GetOrder mean latency, 1 stream: gRPC via Envoy / gRPC direct",
            latency["envoy_grpc_one"],
            "ms",
            direct_ms,
            latency["envoy_grpc_one"] / direct_ms,
            "<= 1.3",
        ),
        Row(
            "GetOrder req/s, 4x16 streams: REST via Envoy / gRPC direct",
            rate["envoy_rest_sat"],
            "req/s",
            direct_rps,
            rate["envoy_rest_sat"] / direct_rps,
            ">= 0.9",
        ),
        Row(
            "GetOrder req/s, 4x16 streams: gRPC via Envoy / gRPC direct",
            rate["envoy_grpc_sat"],
            "req/s",
            direct_rps,
            rate["envoy_grpc_sat"] / direct_rps,
            None,
        ),
    ]


if __name__ == "__main__":
    for row in rows():
        print(row)
