"""How close a saga comes to the speed of the JetStream it runs on, and what each order costs
in CPU across every process.

- orders CONFIRMED per second, CONCURRENCY placed at a time straight to orders over gRPC, each
  counted done when its OrderConfirmed arrives on the orders events stream (a core NATS
  subscription to the stream's subject: no polling with GetOrder, which would cost the CPU it
  measures), against bare JetStream round trips per second on the same nats-server at the same
  concurrency: publish to a file-backed stream (awaiting the PubAck), consume with a push
  consumer, ack and wait for the server's confirmation of the ack. Issue 15: >= 0.05.
- CPU milliseconds per confirmed order, every process of the stack together (utime + stime
  from /proc), printed process by process. Issue 15: <= 8 (the row's baseline is 1 ms, so its
  ratio is the figure itself).
- The same against two floors, what the transport alone costs in Python here: one bare
  JetStream round trip (the nats-py client of the baseline above and nats-server together) and
  one bare grpc.aio unary call (an echo, client and server in this process, CONCURRENCY in
  flight). An order publishes twelve messages, consumes six of them, makes three gRPC calls
  and commits each step to SQLite (docs/performance.md, "Where the targets stand").

    BENCH_ONLY=saga_throughput make bench
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import grpc
import nats
from nats.aio.msg import Msg
from nats.js.api import StorageType, StreamConfig

from bench import cpu
from bench.confirmations import place_confirmed, watching
from bench.rows import Row, scaled
from bench.stack import BenchStack, bench_stack
from tests.support.shop import shop_client

CONCURRENCY = 16
PAYLOAD = b"x" * 200
"""About an order event's size on the wire."""


async def confirmed_per_s(stack: BenchStack, orders: int) -> tuple[float, dict[str, float]]:
    """Orders confirmed per second and the CPU seconds each process spent on them."""
    async with (
        watching(stack.topology.nats_url) as completions,
        shop_client(stack.topology) as shop,
    ):
        product = await shop.product(stock=orders * 4, price_minor=1)
        await shop.account("bench", orders * 10)

        async def place_until_done(customer: str, gate: asyncio.Semaphore) -> None:
            async with gate:
                await place_confirmed(shop, product, customer, completions)

        await asyncio.gather(*(place_until_done("bench", asyncio.Semaphore(4)) for _ in range(8)))
        gate = asyncio.Semaphore(CONCURRENCY)
        pids = stack.pids()
        before = cpu.snapshot(pids)
        started = time.perf_counter()
        await asyncio.gather(*(place_until_done("bench", gate) for _ in range(orders)))
        elapsed = time.perf_counter() - started
        return orders / elapsed, cpu.spent(before, cpu.snapshot(pids))


async def jetstream_round_trips(
    nats_url: str, seconds: float, nats_pid: int
) -> tuple[float, float]:
    """Publish -> consume -> ack round trips per second, CONCURRENCY in flight, and the CPU
    milliseconds each cost this client and nats-server together."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    stream = f"BENCH_{uuid.uuid4().hex[:8]}"
    subject = f"bench.{stream.lower()}"
    await js.add_stream(StreamConfig(name=stream, subjects=[subject], storage=StorageType.FILE))
    waiting: dict[str, asyncio.Future[None]] = {}

    async def consume(msg: Msg) -> None:
        await msg.ack_sync()
        future = waiting.pop((msg.headers or {}).get("id", ""), None)
        if future is not None and not future.done():
            future.set_result(None)

    subscription = await js.subscribe(subject, cb=consume, manual_ack=True, stream=stream)
    count = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            key = uuid.uuid4().hex
            done = asyncio.get_running_loop().create_future()
            waiting[key] = done
            await js.publish(subject, PAYLOAD, headers={"id": key, "Nats-Msg-Id": key})
            await asyncio.wait_for(done, 30)
            count += 1

    pids = {"client": os.getpid(), "nats-server": nats_pid}
    before = cpu.snapshot(pids)
    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
        spent = sum(cpu.spent(before, cpu.snapshot(pids)).values())
        return count / elapsed, spent * 1000 / count
    finally:
        await subscription.unsubscribe()
        await js.delete_stream(stream)
        await nc.close()


async def grpc_unary_call_ms(seconds: float) -> float:
    """CPU milliseconds of one bare grpc.aio unary call, client and server together."""
    server = grpc.aio.server()
    echo = grpc.unary_unary_rpc_method_handler(_echo)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("bench.Echo", {"Echo": echo}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    calls = 0
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/bench.Echo/Echo")
            deadline = time.perf_counter() + seconds

            async def caller() -> None:
                nonlocal calls
                while time.perf_counter() < deadline:
                    await call(PAYLOAD)
                    calls += 1

            await call(PAYLOAD)
            before = cpu.cpu_s(os.getpid())
            await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
            return (cpu.cpu_s(os.getpid()) - before) * 1000 / calls
    finally:
        await server.stop(None)


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


def rows() -> list[Row]:
    orders = scaled(600, 48)
    with bench_stack() as stack:
        assert stack.nats.process is not None
        round_trips, round_trip_ms = asyncio.run(
            jetstream_round_trips(stack.nats.url, scaled(10, 2), stack.nats.process.pid)
        )
        rate, spent = asyncio.run(confirmed_per_s(stack, orders))
    call_ms = asyncio.run(grpc_unary_call_ms(scaled(5, 1)))
    per_order_ms = {name: s * 1000 / orders for name, s in spent.items()}
    total_ms = sum(per_order_ms.values())
    print(
        f"saga: {rate:.1f} orders CONFIRMED/s, {CONCURRENCY} in flight; bare JetStream "
        f"{round_trips:.0f} round trips/s, {round_trip_ms:.3f} CPU ms each (client and "
        f"nats-server); a bare grpc.aio unary call {call_ms:.3f} CPU ms (client and server)"
    )
    print(
        "saga: CPU ms per confirmed order: "
        + ", ".join(
            f"{name} {ms:.2f}" for name, ms in sorted(per_order_ms.items(), key=lambda x: -x[1])
        )
        + f"; total {total_ms:.2f}"
    )
    return [
        Row(
            f"orders CONFIRMED/s / JetStream round trips/s ({CONCURRENCY} in flight)",
            rate,
            "orders/s",
            round_trips,
            rate / round_trips,
            ">= 0.05",
        ),
        Row("CPU ms per confirmed order, all processes", total_ms, "ms", 1.0, total_ms, "<= 8"),
        Row(
            "CPU ms per confirmed order / per bare JetStream round trip (client + nats-server)",
            total_ms,
            "ms",
            round_trip_ms,
            total_ms / round_trip_ms,
            None,
        ),
        Row(
            "CPU ms per confirmed order / per bare grpc.aio unary call (client + server)",
            total_ms,
            "ms",
            call_ms,
            total_ms / call_ms,
            None,
        ),
    ]


if __name__ == "__main__":
    for row in rows():
        print(row)
