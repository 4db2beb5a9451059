"""The Envoy gateway: renders gateway/envoy.yaml.tmpl from the Topology and starts Envoy.

Ports come from the Topology, limits from `GatewaySettings` (its rate limits from the
environment under `make up`: gateway_limits.py) and the routes to the services
from the catalogue (tools/runner/routes.py), so `make up` and the tests
(which run their own gateway on free ports, sometimes with tiny rate limits) share one
template. The descriptor set is the one Bazel builds from proto/, never a copy. The route
clusters and their endpoints come from the registry over ADS, so a gateway is useful only once
Envoy lists live endpoints for them (`live_endpoints`), not merely when it says it is ready.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from string import Template
from urllib.parse import urlsplit

from runtime import catalogue
from runtime.tracing import OTLP_ENDPOINT_ENV
from runtime.transport_security import (
    ENVOY_CA_SECRET,
    ENVOY_CERTIFICATE_SECRET,
    IDENTITY_PREFIX,
    TlsSettings,
)
from tools.runner.binaries import binary
from tools.runner.component import Component
from tools.runner.gateway_limits import settings_from_environment
from tools.runner.gateway_settings import GatewaySettings as GatewaySettings
from tools.runner.gateway_settings import RouteLimit as RouteLimit
from tools.runner.gateway_settings import RouteLimits as RouteLimits
from tools.runner.process import ManagedProcess
from tools.runner.routes import envoy_route, service_routes
from tools.runner.topology import Topology
from tools.runner.ui_routes import MAX_FILE_BYTES, jwt_exemptions, render_static_routes

# Built by //gateway:transcoder_descriptors from //proto:descriptors (see gateway/BUILD.bazel).
DESCRIPTOR_SET = "bazel-bin/gateway/transcoder.binpb"
JWT_ISSUER = "concord-dev"
JWT_AUDIENCE = "concord"
OTLP_PORT = 4317
"""OTLP/gRPC's default port, for an endpoint that names none."""
ROUTE_CLUSTERS = tuple(p.name for p in catalogue.gateway_processes())
"""The clusters the routes name, one per process with a public service; the registry serves
them (registry/xds_resources.py)."""
ROUTES_INDENT = " " * 24
"""Where `${service_routes}` sits in the template: the items of the virtual host's routes."""


def gateway_dir(repo_root: Path) -> Path:
    return repo_root / "gateway"


def public_services() -> list[str]:
    """What the gateway routes, transcodes and reflects, and the OpenAPI describes: the
    catalogue's public services (gateway/public_services.txt is generated from them)."""
    return list(catalogue.public_services())


def render_routes(settings: GatewaySettings) -> str:
    """The catalogue's routes as YAML list items, one JSON object a line."""
    items = (f"- {json.dumps(envoy_route(r, settings))}" for r in service_routes())
    return f"\n{ROUTES_INDENT}".join(items)


def render_config(
    topology: Topology,
    repo_root: Path,
    descriptor_set: Path,
    settings: GatewaySettings | None = None,
    tls: TlsSettings | None = None,
) -> str:
    """The bootstrap YAML for this topology; fails on any placeholder left unset. With `tls`
    (the gateway's own certificate) Envoy speaks mutual TLS to the registry and the services."""
    s = settings or GatewaySettings()
    values: dict[str, object] = {
        "gateway_port": topology.gateway_port,
        "admin_port": topology.gateway_admin_port,
        "registry_endpoints": registry_endpoints(topology.registry_ports),
        # Paths and lists as JSON, which YAML reads whatever characters they hold.
        "descriptor_path": json.dumps(str(descriptor_set.absolute())),
        "jwks_path": json.dumps(str((gateway_dir(repo_root) / "jwks.json").absolute())),
        "jwt_issuer": JWT_ISSUER,
        "jwt_audience": JWT_AUDIENCE,
        "public_services": json.dumps(public_services()),
        "service_routes": render_routes(s),
        # The OpenAPI document is built beside the descriptor set (gateway/BUILD.bazel).
        "ui_routes": render_static_routes(
            repo_root, descriptor_set.parent / "openapi.json", ROUTES_INDENT
        ),
        "ui_jwt_exemptions": f"\n{ROUTES_INDENT}".join(
            f"- {json.dumps(r)}" for r in jwt_exemptions()
        ),
        "max_ui_file_bytes": MAX_FILE_BYTES,
    }
    tls_values = upstream_tls(tls)
    values.update(tls_values)
    values.update(
        otlp_collector(
            os.environ.get(OTLP_ENDPOINT_ENV, ""),
            topology.registry_ports,
            tls_values["registry_transport_socket"],
        )
    )
    values.update({k: v for k, v in asdict(s).items() if not isinstance(v, dict)})
    values["cors_allowed_origins"] = json.dumps([{"exact": o} for o in s.cors_allowed_origins])
    template = Template((gateway_dir(repo_root) / "envoy.yaml.tmpl").read_text())
    return template.substitute(values)


def upstream_tls(tls: TlsSettings | None) -> dict[str, str]:
    """The bootstrap's secrets (the gateway's certificate, the CA) and the transport socket of
    its registry clusters; empty on plaintext. Envoy reloads the certificate when a file is
    moved into its folder (`watched_directory`), so rotation needs no restart; an upstream's
    certificate must chain to the CA and name a Concord process (a SPIFFE URI SAN)."""
    if tls is None:
        return {"tls_secrets": "", "registry_transport_socket": ""}
    secrets = [
        {
            "name": ENVOY_CERTIFICATE_SECRET,
            "tls_certificate": {
                "certificate_chain": {"filename": str(tls.cert_file.absolute())},
                "private_key": {"filename": str(tls.key_file.absolute())},
                "watched_directory": {"path": str(tls.cert_file.absolute().parent)},
            },
        },
        {
            "name": ENVOY_CA_SECRET,
            "validation_context": {
                "trusted_ca": {"filename": str(tls.ca_file.absolute())},
                "match_typed_subject_alt_names": [
                    {"san_type": "URI", "matcher": {"prefix": IDENTITY_PREFIX}}
                ],
            },
        },
    ]
    socket = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3"
            ".UpstreamTlsContext",
            "common_tls_context": {
                "tls_certificate_sds_secret_configs": [{"name": ENVOY_CERTIFICATE_SECRET}],
                "validation_context_sds_secret_config": {"name": ENVOY_CA_SECRET},
            },
        },
    }
    return {
        "tls_secrets": f"secrets: {json.dumps(secrets)}",
        "registry_transport_socket": f"transport_socket: {json.dumps(socket)}",
    }


def registry_endpoints(ports: list[int]) -> str:
    """Every registry replica as the lb_endpoints of one cluster (flow style): Envoy's ADS
    stream and reflection go to whichever is up."""
    return lb_endpoints([("127.0.0.1", port) for port in ports])


def lb_endpoints(addresses: list[tuple[str, int]]) -> str:
    """A cluster's `endpoints`, one locality holding these addresses (YAML flow style)."""
    endpoints = ", ".join(
        f"{{ endpoint: {{ address: {{ socket_address: {{ address: {json.dumps(host)},"
        f" port_value: {port} }} }} }} }}"
        for host, port in addresses
    )
    return f"[ {{ lb_endpoints: [ {endpoints} ] }} ]"


def otlp_collector(
    endpoint: str, registry_ports: list[int], registry_transport_socket: str
) -> dict[str, object]:
    """The collector Envoy exports its spans to: the OTLP endpoint URL (`http://host:4317`)
    when one is set; otherwise the registry (every replica, spoken to as the other registry
    clusters are), whose span receiver writes them to the span files."""
    if not endpoint:
        return {
            "otlp_endpoints": registry_endpoints(registry_ports),
            "otlp_cluster_type": "STATIC",
            "otlp_transport_socket": registry_transport_socket,
        }
    parsed = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    host = parsed.hostname or "127.0.0.1"
    try:
        ipaddress.ip_address(host)
        cluster_type = "STATIC"
    except ValueError:
        cluster_type = "STRICT_DNS"
    return {
        "otlp_endpoints": lb_endpoints([(host, parsed.port or OTLP_PORT)]),
        "otlp_cluster_type": cluster_type,
        "otlp_transport_socket": "",
    }


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
    tls: TlsSettings | None = None
    """The gateway's certificate: mutual TLS to the registry and the services when set."""

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
        return render_config(
            self.topology, self.repo_root, self.descriptor_set, self.settings, self.tls
        )

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
            "--concurrency",
            str(self.settings.worker_threads),
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


def descriptor_set_in(repo_root: Path) -> Path:
    """The transcoder's descriptor set: in a test's runfiles (`gateway/transcoder.binpb`), else
    where `make build` puts it; the latter when neither exists, for `make up` to name."""
    runfiles = repo_root / "gateway" / "transcoder.binpb"
    return runfiles if runfiles.exists() else repo_root / DESCRIPTOR_SET


def gateway_component(topology: Topology, repo_root: Path) -> Component:
    """Envoy as the last component of `make up`, once the services it routes to are up.

    It counts as ready when the registry has given it endpoints for every route cluster, so the
    first request after `make up` reaches a service. The config is rendered only when `make up`
    starts it (`prepare`), so `make status` and `make down` work on a tree that was never built
    or set up, and a missing file (descriptor set, OpenAPI document, Swagger UI) fails `make up`
    with what to run. The rate limits are read from the environment there too
    (gateway_limits.py), so a bad value fails `make up` with its name, not `make down`.
    """
    gateway = Gateway(topology, repo_root, descriptor_set_in(repo_root))

    def prepare() -> Path:
        gateway.settings = settings_from_environment()
        return gateway.write_config()

    return Component(
        name="envoy",
        address=(
            f"127.0.0.1:{topology.gateway_port} (admin 127.0.0.1:{topology.gateway_admin_port})"
        ),
        argv=gateway.argv(),
        ready=lambda: routes_ready(topology.gateway_admin_port),
        waits_for=(
            "Envoy ready and endpoints from the registry for every route cluster"
            f" ({', '.join(ROUTE_CLUSTERS)})"
        ),
        env={},
        note="gateway: REST + gRPC, JWT, rate limits; endpoints from the registry (ADS)",
        ports=(topology.gateway_port, topology.gateway_admin_port),
        metrics_url=f"http://127.0.0.1:{topology.gateway_admin_port}/stats/prometheus",
        prepare=prepare,
    )
