"""What `make up` shows after starting everything: each component answering, by name, and the
system answering end to end.

Every component is checked itself (gRPC health, or its port for NATS, or its routes for Envoy),
each service must be live in the registry at its own address, and then a health check through
Envoy and an authenticated REST call through Envoy to a service (JWT, transcoding, routing and
the service itself). One line per check; any failing check means NOT READY, so a dead PayGate
or payments cannot hide behind a count of the others.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
from concord.registry.v1 import discovery_service_pb2, discovery_service_pb2_grpc, registry_pb2

from runtime.transport_security import blocking_channel
from tools.runner.stack import SERVICES, Stack
from tools.runner.tokens import mint_dev_token

CALL_TIMEOUT_S = 5.0
SETTLE_S = 15.0


@dataclass(frozen=True)
class Check:
    what: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"check: {self.what} -> {'ok' if self.ok else 'FAILED'}: {self.detail}"


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=CALL_TIMEOUT_S) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return 0, str(error)


def _live_addresses(registry_port: int) -> set[str]:
    """Addresses the registry lists as SERVING; empty when the registry does not answer."""
    try:
        with blocking_channel(f"127.0.0.1:{registry_port}") as channel:
            reply = discovery_service_pb2_grpc.DiscoveryServiceStub(channel).ListInstances(
                discovery_service_pb2.ListInstancesRequest(), timeout=CALL_TIMEOUT_S
            )
    except grpc.RpcError:
        return set()
    return {i.address for i in reply.instances if i.health == registry_pb2.HEALTH_STATUS_SERVING}


def component_checks(stack: Stack) -> list[Check]:
    """Each component answers, and each service is live in the registry at its address."""
    checks = []
    components = stack.components()
    for component in components:
        ok = component.ready()
        checks.append(
            Check(
                component.name, ok, f"{component.address} {'answers' if ok else 'does not answer'}"
            )
        )
    live = _live_addresses(stack.topology.registry_port)
    for component in components:
        if component.process_marker in SERVICES:
            ok = component.address in live
            detail = "live" if ok else "not live"
            checks.append(
                Check(f"registry lists {component.name}", ok, f"{component.address} {detail}")
            )
    return checks


def end_to_end_checks(stack: Stack, token: str) -> list[Check]:
    gateway = f"http://127.0.0.1:{stack.topology.gateway_port}"
    health = _get(f"{gateway}/healthz")
    products = _get(f"{gateway}/v1/products?pageSize=1", token)
    try:
        count = len(json.loads(products[1]).get("products", []))
        detail = f"{count} product(s) on the first page"
    except (ValueError, AttributeError):
        detail = products[1][:200]
    return [
        Check(f"GET {gateway}/healthz", health[0] == 200, f"{health[0]} {health[1].strip()}"),
        Check(
            f"GET {gateway}/v1/products with a dev token (Envoy -> inventory)",
            products[0] == 200,
            f"{products[0]}, {detail}",
        ),
    ]


def smoke(stack: Stack, repo_root: Path, settle_s: float = SETTLE_S) -> bool:
    """Prints one line per check; True when all pass (retrying for up to `settle_s` while
    things settle)."""
    token = mint_dev_token(repo_root, "smoke-check", 300)
    deadline = time.monotonic() + settle_s
    while True:
        checks = component_checks(stack) + end_to_end_checks(stack, token)
        ok = all(check.ok for check in checks)
        if ok or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for check in checks:
        print(check.line())
    print(
        "ready: see README.md for a walk from here to a confirmed order"
        if ok
        else "NOT READY: see .data/logs/"
    )
    return ok
