"""Two stacks that differ in one setting, measured against each other in one run: rounds of
orders alternate between them (first one, then the other, then the other way round), so a
neighbour's load on this shared machine falls on both alike, and each round's throughput ratio
is kept so a median can shrug off the round one burst of it spoiled.

Orders are counted done from the events stream (bench/confirmations.py), and every process's
CPU time is read from /proc around each round: CPU per order is the steadier of the two
figures, since throughput also moves with how busy the machine is.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from bench import cpu
from bench.confirmations import Completions, place_confirmed, watching
from bench.rows import Row, scaled
from bench.stack import BenchStack
from tests.support.shop import Shop, shop_client

CUSTOMER = "bench"
ROUNDS = scaled(8, 2)
ORDERS_PER_ROUND = scaled(64, 16)
CONCURRENCY = 16
"""Orders in flight at once: enough to keep every process busy on two cores, so a comparison
measures what a setting costs in CPU, not in latency."""


@dataclass(frozen=True)
class Measured:
    orders_per_s: float
    cpu_ms_per_order: float


@dataclass(frozen=True)
class Compared:
    measured: dict[str, Measured]
    median_ratio: float
    """Median over the rounds of the second stack's orders/s over the first's."""


async def _round(
    shop: Shop, product: str, completions: Completions, orders: int, concurrency: int
) -> float:
    """Seconds to place `orders` orders, `concurrency` in flight, and see every one CONFIRMED."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await place_confirmed(shop, product, CUSTOMER, completions)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(orders)))
    return time.perf_counter() - started


Background = Callable[[], Coroutine[Any, Any, None]]
"""Load a stack carries besides the orders (a Prometheus scraping it), run during its rounds."""


async def alternate(
    stacks: Mapping[str, BenchStack],
    *,
    rounds: int = ROUNDS,
    orders_per_round: int = ORDERS_PER_ROUND,
    concurrency: int = CONCURRENCY,
    during_rounds: Mapping[str, Background] | None = None,
) -> Compared:
    """Orders/s and CPU ms per order of each of two stacks over `rounds` rounds each (after a
    warm-up round each that is not counted); `during_rounds[name]` runs while that stack's
    rounds do, and is cancelled between them."""
    during_rounds = during_rounds or {}
    first, second = stacks
    elapsed = dict.fromkeys(stacks, 0.0)
    cpu_s = dict.fromkeys(stacks, 0.0)
    ratios = []
    async with AsyncExitStack() as contexts:
        shops: dict[str, Shop] = {}
        products: dict[str, str] = {}
        completions: dict[str, Completions] = {}
        for name, stack in stacks.items():
            shops[name] = await contexts.enter_async_context(shop_client(stack.topology))
            completions[name] = await contexts.enter_async_context(
                watching(stack.topology.nats_url)
            )
            orders = (rounds + 1) * orders_per_round
            products[name] = await shops[name].product(stock=orders, price_minor=1)
            await shops[name].account(CUSTOMER, orders)
            await _round(
                shops[name], products[name], completions[name], orders_per_round, concurrency
            )
        for round_ in range(rounds):
            took = {}
            for name in (first, second) if round_ % 2 == 0 else (second, first):
                pids = stacks[name].pids()
                before = cpu.snapshot(pids)
                async with _running(during_rounds.get(name)):
                    took[name] = await _round(
                        shops[name],
                        products[name],
                        completions[name],
                        orders_per_round,
                        concurrency,
                    )
                cpu_s[name] += sum(cpu.spent(before, cpu.snapshot(pids)).values())
                elapsed[name] += took[name]
            ratios.append(took[first] / took[second])
    orders = rounds * orders_per_round
    return Compared(
        {name: Measured(orders / elapsed[name], 1000 * cpu_s[name] / orders) for name in stacks},
        statistics.median(ratios),
    )


@asynccontextmanager
async def _running(background: Background | None) -> AsyncIterator[None]:
    task = asyncio.create_task(background()) if background is not None else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


OVERHEAD_BUDGET = 0.10
"""The most tracing and metrics may take off saga throughput (issue 14)."""


def overhead_row(subject: str, figure: str, compared: Compared) -> Row:
    """Prints what `subject` ("tracing", ...) cost in a run of an "off" and an "on" stack, each
    mode's rate and CPU per order, against OVERHEAD_BUDGET; returns the table's row."""
    off, on = compared.measured["off"], compared.measured["on"]
    ratio = on.orders_per_s / off.orders_per_s
    print(
        f"saga throughput over {ROUNDS * ORDERS_PER_ROUND} orders a mode, {CONCURRENCY} in"
        " flight, rounds alternating:"
    )
    for mode, measured in compared.measured.items():
        print(
            f"  {subject} {mode}: {measured.orders_per_s:.1f} orders/s,"
            f" {measured.cpu_ms_per_order:.2f} CPU ms/order"
        )
    verdict = "within" if 1 - ratio <= OVERHEAD_BUDGET else "OVER"
    print(
        f"  on / off: {ratio:.2f} (overhead {1 - ratio:.1%}, {verdict} the"
        f" {OVERHEAD_BUDGET:.0%} budget); median of the rounds' ratios"
        f" {compared.median_ratio:.2f}; CPU per order on / off"
        f" {on.cpu_ms_per_order / off.cpu_ms_per_order:.2f}"
    )
    return Row(
        figure, on.orders_per_s, "orders/s", off.orders_per_s, ratio, f">= {1 - OVERHEAD_BUDGET:g}"
    )
