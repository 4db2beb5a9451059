"""The Envoy gateway: renders gateway/envoy.yaml.tmpl from the Topology and starts Envoy.

Ports come from the Topology and limits from `GatewaySettings`, so `make up` and the tests
(which run their own gateway on free ports, sometimes with tiny rate limits) share one
template. The descriptor set is the one Bazel builds from proto/, never a copy. The route
clusters and their endpoints come from the registry over ADS, so a gateway is useful only once
Envoy lists live endpoints for them (`live_endpoints`), not merely when it says it is ready.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from string import Template

from tools.runner.binaries import binary
from tools.runner.component import Component
from tools.runner.process import ManagedProcess
from tools.runner.topology import Topology

# Built by //gateway:transcoder_descriptors from //proto:descriptors (see gateway/BUILD.bazel).
DESCRIPTOR_SET = "bazel-bin/gateway/transcoder.binpb"
JWT_ISSUER = "concord-dev"
JWT_AUDIENCE = "concord"
ROUTE_CLUSTERS = ("orders", "inventory", "payments")
"""The clusters the routes name; the registry serves them (registry/xds_resources.py)."""


@dataclass(frozen=True)
class RouteLimit:
    """A token bucket: `burst` requests per `fill_interval_s`, refilled all at once."""

    burst: int
    fill_interval_s: int


@dataclass(frozen=True)
class GatewaySettings:
    """Every limit and timeout the gateway enforces, with its unit in its name."""

    reads: RouteLimit = RouteLimit(burst=200, fill_interval_s=1)
    writes: RouteLimit = RouteLimit(burst=50, fill_interval_s=1)
    grpc: RouteLimit = RouteLimit(burst=200, fill_interval_s=1)
    read_timeout_s: int = 5
    write_timeout_s: int = 15
    connect_timeout_s: int = 1
    retry_attempts: int = 2
    """Retries of a request whose instance could not take it (see each route's retry_policy)."""
    request_headers_timeout_s: int = 10
    request_timeout_s: int = 60
    stream_idle_timeout_s: int = 60
    connection_idle_timeout_s: int = 300
    max_request_body_bytes: int = 1024 * 1024
    max_response_body_bytes: int = 4 * 1024 * 1024
    max_request_headers_kb: int = 32
    """Enforced by the edge filter (431 / RESOURCE_EXHAUSTED), not the codec: see below."""
    max_request_headers_count: int = 100
    codec_request_headers_ceiling_kb: int = 96
    """What the codecs accept, above `max_request_headers_kb`: an HTTP/2 codec that hits its
    own limit can only reset the stream, so the limits above are checked by a filter that can
    answer, and only requests beyond this ceiling still get a reset (docs/gateway.md)."""
    codec_request_headers_ceiling_count: int = 200
    jwt_max_lifetime_s: int = 12 * 3600
    """Longest `exp - iat` a token may have; tokens without `exp` are refused outright."""
    jwt_clock_skew_s: int = 30
    cors_allowed_origins: tuple[str, ...] = (
        "http://localhost:3000",
        "http://127.0.0.1:3000",
        "http://localhost:5173",
        "http://127.0.0.1:5173",
        "http://localhost:8000",
        "http://127.0.0.1:8000",
    )
    """Browser origins whose preflights are answered (exact match); the dev front ends' ports."""
    cors_max_age_s: int = 600
    max_heap_bytes: int = 512 * 1024 * 1024
    access_log_flush_interval_ms: int = 1000
    """How soon a request's access log line reaches the log file (Envoy's default is 10 s)."""
    max_downstream_connections: int = 1000


def gateway_dir(repo_root: Path) -> Path:
    return repo_root / "gateway"


def public_services(repo_root: Path) -> list[str]:
    """gateway/public_services.txt: what the gateway transcodes and the OpenAPI describes."""
    path = gateway_dir(repo_root) / "public_services.txt"
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def render_config(
    topology: Topology,
    repo_root: Path,
    descriptor_set: Path,
    settings: GatewaySettings | None = None,
) -> str:
    """The bootstrap YAML for this topology; fails on any placeholder left unset."""
    s = settings or GatewaySettings()
    values: dict[str, object] = {
        "gateway_port": topology.gateway_port,
        "admin_port": topology.gateway_admin_port,
        "registry_port": topology.registry_port,
        # Paths and lists as JSON, which YAML reads whatever characters they hold.
        "descriptor_path": json.dumps(str(descriptor_set.absolute())),
        "jwks_path": json.dumps(str((gateway_dir(repo_root) / "jwks.json").absolute())),
        "jwt_issuer": JWT_ISSUER,
        "jwt_audience": JWT_AUDIENCE,
        "public_services": json.dumps(public_services(repo_root)),
    }
    for name, limit in (("read", s.reads), ("write", s.writes), ("grpc", s.grpc)):
        values[f"{name}_burst"] = limit.burst
        values[f"{name}_fill_interval_s"] = limit.fill_interval_s
    values.update({k: v for k, v in asdict(s).items() if not isinstance(v, dict)})
    values["cors_allowed_origins"] = json.dumps([{"exact": o} for o in s.cors_allowed_origins])
    template = Template((gateway_dir(repo_root) / "envoy.yaml.tmpl").read_text())
    return template.substitute(values)


def admin_ready(admin_port: int) -> bool:
    """Envoy's own verdict: /ready answers 200 once listeners and clusters are initialised."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready", timeout=0.5) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _admin_text(admin_port: int, path: str) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}{path}", timeout=2) as r:
            return str(r.read().decode())
    except (urllib.error.URLError, OSError):
        return None


def live_endpoints(admin_port: int, cluster: str) -> set[str]:
    """The endpoints Envoy's admin `/clusters` lists for `cluster`: what it would route to."""
    text = _admin_text(admin_port, "/clusters") or ""
    return set(re.findall(rf"^{re.escape(cluster)}::([0-9.]+:\d+)::cx_active", text, re.MULTILINE))


def endpoint_requests(admin_port: int, cluster: str) -> dict[str, int]:
    """Requests Envoy sent to each endpoint of `cluster` (admin `/clusters`, `rq_total`)."""
    text = _admin_text(admin_port, "/clusters") or ""
    pattern = rf"^{re.escape(cluster)}::([0-9.]+:\d+)::rq_total::(\d+)$"
    return {host: int(n) for host, n in re.findall(pattern, text, re.MULTILINE)}


def routes_ready(admin_port: int) -> bool:
    """Envoy is ready and every route cluster has at least one endpoint from the registry, so
    the first request after start-up reaches a service."""
    return admin_ready(admin_port) and all(
        live_endpoints(admin_port, cluster) for cluster in ROUTE_CLUSTERS
    )


@dataclass
class Gateway:
    """One Envoy process for a topology; `start` renders its config first."""

    topology: Topology
    repo_root: Path
    descriptor_set: Path
    settings: GatewaySettings = field(default_factory=GatewaySettings)
    detached: bool = False
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.topology.gateway_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.topology.gateway_admin_port}"

    @property
    def config_path(self) -> Path:
        return self.topology.data_dir / "gateway" / "envoy.yaml"

    def render(self) -> str:
        return render_config(self.topology, self.repo_root, self.descriptor_set, self.settings)

    def write_config(self) -> Path:
        if not self.descriptor_set.exists():
            raise FileNotFoundError(f"{self.descriptor_set} missing: run `make build` first")
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.render())
        return self.config_path

    def argv(self) -> list[str]:
        """Envoy's command line; hot restart is off so several gateways can share a host."""
        return [
            str(binary("envoy")),
            "-c",
            str(self.config_path),
            "--disable-hot-restart",
            "--log-level",
            "warn",
            "--drain-time-s",
            "2",
            "--file-flush-interval-msec",
            str(self.settings.access_log_flush_interval_ms),
        ]

    def start(self, timeout_s: float = 30.0) -> Gateway:
        self.write_config()
        self.process = ManagedProcess(
            name="envoy",
            argv=self.argv(),
            log_path=self.topology.log_dir / "envoy.log",
            detached=self.detached,
        ).start()
        self.process.wait_until(lambda: admin_ready(self.topology.gateway_admin_port), timeout_s)
        return self

    def endpoints(self, cluster: str) -> set[str]:
        return live_endpoints(self.topology.gateway_admin_port, cluster)

    def endpoint_requests(self, cluster: str) -> dict[str, int]:
        return endpoint_requests(self.topology.gateway_admin_port, cluster)

    def stats(self) -> dict[str, int]:
        """Envoy's counters and gauges, for tests that check what reached a cluster."""
        url = f"{self.admin_url}/stats?format=json"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        return {
            s["name"]: int(s["value"]) for s in body["stats"] if isinstance(s.get("value"), int)
        }

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def gateway_component(topology: Topology, repo_root: Path) -> Component:
    """Envoy as the last component of `make up`, once the services it routes to are up.

    It counts as ready when the registry has given it endpoints for every route cluster, so the
    first request after `make up` reaches a service. The config is rendered here, when the
    descriptor set exists (`make up` builds first), so `make status` and `make down` work on a
    tree that was never built.
    """
    gateway = Gateway(topology, repo_root, repo_root / DESCRIPTOR_SET)
    if gateway.descriptor_set.exists():
        gateway.write_config()
    return Component(
        name="envoy",
        address=(
            f"127.0.0.1:{topology.gateway_port} (admin 127.0.0.1:{topology.gateway_admin_port})"
        ),
        argv=gateway.argv(),
        ready=lambda: routes_ready(topology.gateway_admin_port),
        env={},
        note="gateway: REST + gRPC, JWT, rate limits; endpoints from the registry (ADS)",
    )
