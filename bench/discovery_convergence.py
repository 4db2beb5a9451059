"""How long a dead instance keeps getting traffic: two inventory instances behind Envoy (fed
by the registry over ADS, with the registry's default probes), one killed -9, and the seconds
until Envoy's endpoint list for inventory no longer holds it. Compared with the bound the
registry's settings give: PROBE_FAILURES_TO_EVICT failed probes PROBE_INTERVAL_S apart, the
last of which may wait PROBE_TIMEOUT_S (a killed process refuses connections at once, so it
usually converges well inside it). Median over ROUNDS kills.

    BENCH_ONLY=discovery_convergence make bench
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial

from bench.rows import Row, scaled
from bench.stack import BENCH_GATEWAY, bench_stack
from tools.runner.gateway import Gateway
from tools.runner.ports import free_port

PROBE_INTERVAL_S = 2.0
PROBE_TIMEOUT_S = 1.0
PROBE_FAILURES_TO_EVICT = 2
DEFAULT_PROBES = {
    "CONCORD_REGISTRY_PROBE_INTERVAL_S": str(PROBE_INTERVAL_S),
    "CONCORD_REGISTRY_PROBE_TIMEOUT_S": str(PROBE_TIMEOUT_S),
    "CONCORD_REGISTRY_PROBE_FAILURES_TO_EVICT": str(PROBE_FAILURES_TO_EVICT),
    "CONCORD_REGISTRY_LEASE_TTL_S": "10.0",
}
"""The registry's defaults (registry/settings.py), spelt out over the tests' fast probes."""
BOUND_S = PROBE_FAILURES_TO_EVICT * PROBE_INTERVAL_S + PROBE_TIMEOUT_S
POLL_S = 0.05
TIMEOUT_S = 60.0


def rows() -> list[Row]:
    took = []
    with bench_stack(gateway=BENCH_GATEWAY, shop=False, registry_env=DEFAULT_PROBES) as stack:
        gateway = stack.gateway
        assert gateway is not None
        stack.services.start("inventory")
        for _ in range(scaled(5, 1)):
            address = stack.services.start_instance("inventory", free_port()).address
            wait_until(partial(routed, gateway, address))
            stack.services.running[f"inventory-{address.rsplit(':', 1)[1]}"].kill()
            killed = time.perf_counter()
            wait_until(partial(gone, gateway, address))
            took.append(time.perf_counter() - killed)
    median = statistics.median(took)
    print(
        "discovery: kill -9 to out of Envoy's endpoints: "
        + ", ".join(f"{t:.2f} s" for t in took)
        + f" (bound {BOUND_S:g} s)"
    )
    return [
        Row(
            "discovery: kill -9 until Envoy stops routing (s) / probe bound",
            median,
            "s",
            BOUND_S,
            median / BOUND_S,
            "<= 1",
        ),
    ]


def routed(gateway: Gateway, address: str) -> bool:
    return address in gateway.endpoints("inventory")


def gone(gateway: Gateway, address: str) -> bool:
    return not routed(gateway, address)


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.perf_counter() + TIMEOUT_S
    while not condition():
        if time.perf_counter() > deadline:
            raise AssertionError(f"not converged within {TIMEOUT_S} s")
        time.sleep(POLL_S)
