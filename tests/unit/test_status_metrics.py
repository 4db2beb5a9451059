"""`make status` names where each process serves its metrics, Envoy's stats included
(docs/observability.md)."""

from __future__ import annotations

from pathlib import Path

from runtime import catalogue
from tools.runner.stack import Stack, python_module_launcher
from tools.runner.topology import Topology


def test_status_lists_every_metrics_url_and_envoys_stats(tmp_path: Path) -> None:
    topology = Topology.on_free_ports(tmp_path / "data")
    status = Stack(topology, tmp_path, launcher=python_module_launcher).describe()

    for name in ["registry", *(p.name for p in catalogue.CATALOGUE)]:
        port = topology.metrics_ports[name]
        assert f"{name}: http://127.0.0.1:{port}/metrics" in status
    assert f"envoy: http://127.0.0.1:{topology.gateway_admin_port}/stats/prometheus" in status


def test_default_metrics_ports_are_the_catalogues() -> None:
    topology = Topology(data_dir=Path("/nonexistent"))
    for p in catalogue.CATALOGUE:
        assert topology.metrics_url(p.name) == f"http://127.0.0.1:{p.metrics_port}/metrics"
    assert topology.metrics_url("registry") == "http://127.0.0.1:9450/metrics"
