"""What the relay's window and the consumers' batches do for the saga: orders placed and seen
CONFIRMED per second on two private stacks in one run, one publishing ack by ack and
committing one message per transaction (CONCORD_OUTBOX_PUBLISH_WINDOW=1,
CONCORD_CONSUMER_FETCH_BATCH=1: as before either existed), one with the defaults; rounds
alternate between them (bench/side_by_side.py), and every process's CPU time per order is read
from /proc.

    BENCH_ONLY=saga_batching make bench
"""

from __future__ import annotations

import asyncio
from contextlib import ExitStack

from bench.rows import Row, print_rows
from bench.side_by_side import alternate
from bench.stack import bench_stack

ONE_AT_A_TIME = {"CONCORD_OUTBOX_PUBLISH_WINDOW": "1", "CONCORD_CONSUMER_FETCH_BATCH": "1"}


def rows() -> list[Row]:
    with ExitStack() as stacks:
        running = {
            "before": stacks.enter_context(bench_stack(ONE_AT_A_TIME)),
            "after": stacks.enter_context(bench_stack()),
        }
        compared = asyncio.run(alternate(running))
    after, before = compared.measured["after"], compared.measured["before"]
    return [
        Row(
            "orders CONFIRMED/s, relay window + consumer batches / ack by ack, one per commit",
            after.orders_per_s,
            "orders/s",
            before.orders_per_s,
            after.orders_per_s / before.orders_per_s,
            None,
        ),
        Row(
            "CPU ms per confirmed order (services + nats-server), batched / one at a time",
            after.cpu_ms_per_order,
            "ms/order",
            before.cpu_ms_per_order,
            after.cpu_ms_per_order / before.cpu_ms_per_order,
            None,
        ),
    ]


def main() -> None:
    print_rows(rows())


if __name__ == "__main__":
    main()
