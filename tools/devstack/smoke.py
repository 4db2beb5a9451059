"""What `make up` shows after starting everything: the system answering end to end.

A health check through Envoy, an authenticated REST call through Envoy to a service (JWT,
transcoding, routing and the service itself), and the registry's count of live instances.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
from concord.registry.v1 import discovery_service_pb2, discovery_service_pb2_grpc, registry_pb2

from tools.devstack.tokens import mint_dev_token
from tools.devstack.topology import Topology

CALL_TIMEOUT_S = 5.0
SETTLE_S = 15.0


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


def _live_services(topology: Topology) -> set[str]:
    with grpc.insecure_channel(f"127.0.0.1:{topology.registry_port}") as channel:
        reply = discovery_service_pb2_grpc.DiscoveryServiceStub(channel).ListInstances(
            discovery_service_pb2.ListInstancesRequest(), timeout=CALL_TIMEOUT_S
        )
    return {
        i.service_name for i in reply.instances if i.health == registry_pb2.HEALTH_STATUS_SERVING
    }


def smoke(topology: Topology, repo_root: Path) -> bool:
    """Prints one line per check; True when all pass (retrying briefly while things settle)."""
    gateway = f"http://127.0.0.1:{topology.gateway_port}"
    token = mint_dev_token(repo_root, "smoke-check", 300)
    deadline = time.monotonic() + SETTLE_S
    while True:
        health = _get(f"{gateway}/healthz")
        products = _get(f"{gateway}/v1/products?pageSize=1", token)
        live = _live_services(topology)
        ok = health[0] == 200 and products[0] == 200 and len(live) >= 3
        if ok or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    print(f"check: GET {gateway}/healthz -> {health[0]} {health[1].strip()}")
    try:
        count = len(json.loads(products[1]).get("products", []))
        detail = f"{count} product(s) on the first page"
    except ValueError:
        detail = products[1][:200]
    print(
        f"check: GET {gateway}/v1/products with a dev token (Envoy -> inventory) -> {products[0]}, {detail}"
    )
    print(f"check: registry sees {len(live)} live services: {', '.join(sorted(live))}")
    print(
        "ready: see README.md for a walk from here to a confirmed order"
        if ok
        else "NOT READY: see .data/logs/"
    )
    return ok
