"""What the relay's window and the consumers' batches do for the saga: orders placed and seen
CONFIRMED per second on two private stacks in one run, one publishing ack by ack and
committing one message per transaction (CONCORD_OUTBOX_PUBLISH_WINDOW=1,
CONCORD_CONSUMER_FETCH_BATCH=1: as before either existed), one with the defaults; rounds
alternate between them (bench/tracing_overhead.py's method), and every process's CPU time per
order is read from /proc.

    PYTHONPATH=.:bazel-bin/proto .venv/bin/python -m bench.saga_batching
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.rows import Row, print_rows, scaled
from bench.tracing_overhead import ORDERS_PER_ROUND, place_round
from tests.support.processes import ServiceRunner
from tests.support.shop import shop_client
from tools.runner.nats import NatsServer
from tools.runner.stack import Stack, python_module_launcher
from tools.runner.topology import Topology

ROUNDS = 13
ONE_AT_A_TIME = {"CONCORD_OUTBOX_PUBLISH_WINDOW": "1", "CONCORD_CONSUMER_FETCH_BATCH": "1"}
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_s(pids: list[int]) -> float:
    """utime + stime of these processes, in seconds (/proc/<pid>/stat)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS_PER_S


@contextmanager
def running_stack(
    root: Path, name: str, env: dict[str, str]
) -> Iterator[tuple[Topology, list[int]]]:
    """A stack on free ports whose services run with `env`; yields it and its process ids
    (registry, services, the PayGate stand-in, nats-server)."""
    topology = Topology.on_free_ports(root / name)
    nats = NatsServer(
        topology.nats_port, topology.nats_monitor_port, topology.data_dir / "nats", topology.log_dir
    ).start()
    runner = ServiceRunner(
        Stack(topology, repo_root=Path.cwd(), launcher=python_module_launcher), service_env=env
    )
    try:
        runner.start_shop()
        pids = [service.process.pid for service in runner.running.values()]
        if nats.process is not None:
            pids.append(nats.process.pid)
        yield topology, pids
    finally:
        runner.stop_all()
        nats.stop()


async def compare(stacks: dict[str, tuple[Topology, list[int]]]) -> dict[str, tuple[float, float]]:
    """Orders per second and CPU milliseconds per order, for each stack."""
    rounds = scaled(ROUNDS, 3)
    elapsed = dict.fromkeys(stacks, 0.0)
    cpu = dict.fromkeys(stacks, 0.0)
    names = list(stacks)
    async with (
        shop_client(stacks[names[0]][0]) as first,
        shop_client(stacks[names[1]][0]) as second,
    ):
        shops = dict(zip(names, (first, second), strict=True))
        products = {}
        for name, shop in shops.items():
            products[name] = await shop.product(stock=rounds * ORDERS_PER_ROUND, price_minor=100)
            await shop.account("bench", rounds * ORDERS_PER_ROUND * 1_000)
            await place_round(shop, products[name])  # warm-up, not counted
        for round_ in range(rounds - 1):
            for name in names if round_ % 2 == 0 else reversed(names):
                before = cpu_s(stacks[name][1])
                elapsed[name] += await place_round(shops[name], products[name])
                cpu[name] += cpu_s(stacks[name][1]) - before
    orders = (rounds - 1) * ORDERS_PER_ROUND
    return {name: (orders / elapsed[name], 1000 * cpu[name] / orders) for name in names}


def rows() -> list[Row]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_stack(Path(tmp), "before", ONE_AT_A_TIME) as before,
        running_stack(Path(tmp), "after", {}) as after,
    ):
        found = asyncio.run(compare({"before": before, "after": after}))
    (rate, cpu), (rate_1, cpu_1) = found["after"], found["before"]
    return [
        Row(
            "orders CONFIRMED/s, relay window + consumer batches / ack by ack, one per commit",
            rate,
            "orders/s",
            rate_1,
            rate / rate_1,
            None,
        ),
        Row(
            "CPU ms per confirmed order (services + nats-server), batched / one at a time",
            cpu,
            "ms/order",
            cpu_1,
            cpu / cpu_1,
            None,
        ),
    ]


def main() -> None:
    print_rows(rows())


if __name__ == "__main__":
    main()
