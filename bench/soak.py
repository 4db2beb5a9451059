"""Steady state under load: orders at 80% of the stack's measured maximum for BENCH_SOAK_S
(default 10 minutes; 45 s in quick mode), with the retention job's intervals shortened so it
prunes within the run, sampling every SAMPLE_S:
- disk: the stack's data folder split into the SQLite databases, their WAL files, the
  JetStream store and the span files;
- memory: the resident set of every process together (and of each, printed);
- latency: the p99 of PlaceOrder -> OrderConfirmed (seen on the events stream) in the window,
  and its median;
- work: CPU milliseconds (every process) per order completed in the window.
Prints each one's least-squares slope per minute and whether it is flat (the slope over the
whole run under FLAT_FRACTION of its mean).

What is not meant to be flat: the SQLite databases hold orders' event store and read models,
the record of every order, which grows with the orders by design; the inbox is pruned only
after the stream could no longer redeliver (days by default, settings.required_inbox_retention_s).
The WAL files (checkpointed by the retention job), the outbox (published rows pruned after
CONCORD_OUTBOX_RETENTION_S), the JetStream store (events bounded by size here) and the span
files (rotated at CONCORD_TRACE_FILE_MAX_MIB) are.

    BENCH_SOAK_S=600 BENCH_ONLY=soak make bench
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Callable, Coroutine
from pathlib import Path

from bench import cpu
from bench.confirmations import watching
from bench.rows import Row, quick, scaled
from bench.saga_throughput import CONCURRENCY
from bench.stack import BenchStack, bench_stack
from tests.support.shop import shop_client

SOAK_ENV = "BENCH_SOAK_S"
LOAD_FRACTION = 0.8
FLAT_FRACTION = 0.10
RETENTION_ENV = {
    "CONCORD_RETENTION_INTERVAL_S": "10",
    "CONCORD_OUTBOX_RETENTION_S": "20",
    "CONCORD_EVENT_STREAM_MAX_MIB": "4",
    "CONCORD_TRACE_FILE_MAX_MIB": "4",
    "CONCORD_STREAM_DUPLICATE_WINDOW_S": "60",
}
"""Retention that acts within minutes: prune published outbox rows after 20 s, every 10 s, keep
4 MiB of each events stream (discarding the oldest, as in production), rotate span files at
4 MiB, and keep message ids for JetStream's deduplication 60 s (nats-server holds them in
memory: with the default 600 s its resident set grows for the first ten minutes)."""
SETTLE_S = 120.0
"""Slopes are fitted from here on: the first two minutes fill the pipeline, the duplicate
window and the span files up to their bounds."""


def soak_s() -> float:
    return float(os.environ.get(SOAK_ENV, "45" if quick() else "600"))


def disk(data_dir: Path) -> dict[str, int]:
    """Bytes of the stack's data folder by kind."""
    kinds = {"sqlite": 0, "wal": 0, "jetstream": 0, "traces": 0}
    for path in data_dir.rglob("*"):
        try:
            if not path.is_file():
                continue
            size = path.stat().st_size
        except FileNotFoundError:  # JetStream removed a block or SQLite its WAL meanwhile
            continue
        if "jetstream" in path.parts:
            kinds["jetstream"] += size
        elif path.parent.name == "traces":
            kinds["traces"] += size
        elif path.name.endswith(("-wal", "-shm")):
            kinds["wal"] += size
        elif path.suffix in (".sqlite3", ".db", ".sqlite"):
            kinds["sqlite"] += size
    return kinds


class Soak:
    def __init__(self, stack: BenchStack) -> None:
        self.stack = stack
        self.samples: list[dict[str, float]] = []
        self.latencies: list[float] = []
        self._cpu = cpu.snapshot(stack.pids())

    async def run(self) -> float:
        async with (
            watching(self.stack.topology.nats_url) as completions,
            shop_client(self.stack.topology) as shop,
        ):
            seconds = soak_s()
            product = await shop.product(stock=1_000_000, price_minor=1)
            await shop.account("soak", 10**9)

            async def one() -> None:
                started = time.perf_counter()
                placed = await shop.place("soak", [(product, 1)])
                await asyncio.wait_for(completions.expect(placed.order_id), 60)
                self.latencies.append(time.perf_counter() - started)

            maximum = await sustained_rate(one, scaled(60, 15))
            self.latencies.clear()
            rate = maximum * LOAD_FRACTION
            print(f"soak: max {maximum:.1f} orders/s, soaking at {rate:.1f}/s for {seconds:g} s")
            await self._paced(one, rate, seconds)
            return rate

    async def _paced(
        self, one: Callable[[], Coroutine[object, object, None]], rate: float, seconds: float
    ) -> None:
        """Open loop: an order every 1/rate seconds whatever the replies, sampled meanwhile."""
        sample_s = max(5.0, seconds / 20)
        tasks: set[asyncio.Task[None]] = set()
        started = time.perf_counter()
        next_sample = started
        placed = 0
        while (now := time.perf_counter()) - started < seconds:
            if now >= next_sample:
                self._sample(now - started)
                next_sample += sample_s
            due = int((now - started) * rate) - placed
            for _ in range(due):
                task = asyncio.create_task(one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                placed += 1
            await asyncio.sleep(0.005)
        await asyncio.gather(*tasks)
        self._sample(time.perf_counter() - started)

    def _sample(self, elapsed_s: float) -> None:
        window, self.latencies = self.latencies, []
        window.sort()
        p99 = window[int(len(window) * 0.99)] * 1000 if window else float("nan")
        p50 = window[len(window) // 2] * 1000 if window else float("nan")
        now = cpu.snapshot(self.stack.pids())
        spent_s = sum(cpu.spent(self._cpu, now).values())
        self._cpu = now
        rss = {name: cpu.rss_bytes(pid) / 2**20 for name, pid in self.stack.pids().items()}
        sample = {
            "t_min": elapsed_s / 60,
            "rss_mib": sum(rss.values()),
            "p99_ms": p99,
            "p50_ms": p50,
            "cpu_ms_per_order": 1000 * spent_s / len(window) if window else float("nan"),
        }
        sample.update({f"{PROCESS_RSS}{name}": mib for name, mib in rss.items()})
        sample.update(
            {f"{k}_mib": v / 2**20 for k, v in disk(self.stack.topology.data_dir).items()}
        )
        self.samples.append(sample)


async def sustained_rate(
    one: Callable[[], Coroutine[object, object, None]], seconds: float
) -> float:
    """Orders per second CONCURRENCY at a time, over the last two thirds of `seconds`: the
    first third fills the pipeline (outbox, queues), which a short burst would not."""
    done: list[float] = []
    started = time.perf_counter()

    async def worker() -> None:
        while time.perf_counter() - started < seconds:
            await one()
            done.append(time.perf_counter() - started)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    counted = [t for t in done if seconds / 3 <= t <= seconds]
    return len(counted) / (seconds * 2 / 3)


UNTARGETED = ("sqlite_mib", "p50_ms", "cpu_ms_per_order")
"""Rows that explain the others: the record of every order grows by design; the median and
the CPU each order costs (every process, per window) tell a p99 that rises from queueing at
the tail from work per order that grows."""
PROCESS_RSS = "rss_mib:"
"""Samples also hold each process's resident set under this prefix, so a growing total can be
traced to the process that grows."""


def slope_per_min(samples: list[dict[str, float]], key: str) -> tuple[float, float]:
    """Least-squares slope of `key` per minute, and its mean."""
    points = [(s["t_min"], s[key]) for s in samples if s[key] == s[key]]  # drop NaN
    if len(points) < 3:
        return 0.0, points[0][1] if points else 0.0
    fit = statistics.linear_regression([p[0] for p in points], [p[1] for p in points])
    return fit.slope, statistics.mean(p[1] for p in points)


def rows() -> list[Row]:
    with bench_stack(RETENTION_ENV) as stack:
        soak = Soak(stack)
        rate = asyncio.run(soak.run())
    settled = [sample for sample in soak.samples if sample["t_min"] * 60 >= SETTLE_S]
    if len(settled) < 3:  # a short run (quick mode): all but the first sample, the burst's
        settled = soak.samples[1:]
    minutes = settled[-1]["t_min"] - settled[0]["t_min"]
    processes = [key for key in soak.samples[-1] if key.startswith(PROCESS_RSS)]
    print(
        "soak: resident set by process: "
        + ", ".join(
            f"{key.removeprefix(PROCESS_RSS)} {slope:+.2f} MiB/min around {mean:.0f}"
            for key in processes
            for slope, mean in [slope_per_min(settled, key)]
        )
    )
    found = []
    for key, unit in (
        ("wal_mib", "MiB"),
        ("jetstream_mib", "MiB"),
        ("traces_mib", "MiB"),
        ("sqlite_mib", "MiB"),
        ("rss_mib", "MiB"),
        ("p99_ms", "ms"),
        ("p50_ms", "ms"),
        ("cpu_ms_per_order", "ms"),
    ):
        slope, mean = slope_per_min(settled, key)
        drift = abs(slope) * minutes / mean if mean else 0.0
        flat = drift <= FLAT_FRACTION
        print(
            f"soak: {key}: {slope:+.3f} {unit}/min around {mean:.2f} {unit}"
            f" ({'flat' if flat else 'GROWING' if slope > 0 else 'FALLING'})"
        )
        target = None if key in UNTARGETED else f"<= {FLAT_FRACTION:g}"
        found.append(
            Row(
                f"soak {rate:.0f} orders/s, {minutes:.1f} min: {key} drift / mean",
                slope,
                f"{unit}/min",
                mean,
                drift,
                target,
            )
        )
    return found
