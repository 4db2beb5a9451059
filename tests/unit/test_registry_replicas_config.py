"""How the registry replicas are wired: the client target that fails over between them, the
scaled stack that starts them after NATS on shared state, and the gateway's ADS cluster that
lists them all."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runtime.registry_client import registry_target
from tests.support.repo import REPO_ROOT, built
from tools.runner.gateway import render_config
from tools.runner.stack import Stack, python_module_launcher
from tools.runner.topology import Scale, Topology


def test_one_registry_address_is_the_target_as_is() -> None:
    assert registry_target("127.0.0.1:50050") == "127.0.0.1:50050"
    assert registry_target("registry.concord.svc:50050") == "registry.concord.svc:50050"


def test_several_replicas_become_one_balanced_target() -> None:
    assert registry_target("127.0.0.1:50050, 127.0.0.1:50060") == (
        "ipv4:127.0.0.1:50050,127.0.0.1:50060"
    )
    assert registry_target("[::1]:50050,[::1]:50060") == "ipv6:[::1]:50050,[::1]:50060"


@pytest.mark.parametrize("raw", ["registry-1:50050,registry-2:50050", "127.0.0.1:1,[::1]:2", ""])
def test_a_list_of_names_or_mixed_families_is_refused_saying_what_to_give(raw: str) -> None:
    with pytest.raises(ValueError, match="CONCORD_REGISTRY_ADDRESS"):
        registry_target(raw)


def scaled_stack(tmp_path: Path) -> Stack:
    topology = Topology.on_free_ports(tmp_path).scaled(Scale.on_free_ports())
    return Stack(topology, repo_root=REPO_ROOT, launcher=python_module_launcher)


def test_the_scaled_stack_starts_two_registry_replicas_after_nats_on_shared_state(
    tmp_path: Path,
) -> None:
    stack = scaled_stack(tmp_path)
    names = [c.name for c in stack.components()]
    assert names.index("registry") > names.index("nats-3")
    assert names.index("registry-2") == names.index("registry") + 1
    replicas = [c for c in stack.components() if c.name.startswith("registry")]
    for replica in replicas:
        assert replica.env["CONCORD_REGISTRY_STATE"] == "jetstream"
        assert replica.env["CONCORD_NATS_URL"] == stack.topology.nats_url
        assert replica.env["CONCORD_NATS_REPLICAS"] == "3"
    assert {c.address for c in replicas} == {
        f"127.0.0.1:{p}" for p in stack.topology.registry_ports
    }
    assert stack.service_env()["CONCORD_REGISTRY_ADDRESS"] == ",".join(
        f"127.0.0.1:{p}" for p in stack.topology.registry_ports
    )


def test_the_embedded_stack_keeps_one_registry_first_in_memory(tmp_path: Path) -> None:
    stack = Stack(Topology.on_free_ports(tmp_path), REPO_ROOT, python_module_launcher)
    first = stack.components()[0]
    assert first.name == "registry"
    assert "CONCORD_REGISTRY_STATE" not in first.env
    assert [c.name for c in stack.components()].count("registry") == 1


def test_the_gateway_ads_cluster_lists_every_registry_replica(tmp_path: Path) -> None:
    stack = scaled_stack(tmp_path)
    config = yaml.safe_load(
        render_config(stack.topology, REPO_ROOT, built("gateway/transcoder.binpb"))
    )
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    for name in ("xds_cluster", "public_reflection"):
        endpoints = clusters[name]["load_assignment"]["endpoints"][0]["lb_endpoints"]
        ports = [e["endpoint"]["address"]["socket_address"]["port_value"] for e in endpoints]
        assert ports == stack.topology.registry_ports
