"""A minimal real Envoy fed by the registry over ADS: one gRPC listener routed to a cluster.

The bootstrap carries only what docs/registry.md asks every Envoy for (ads_config, cds_config
and the static `xds_cluster`), plus a listener so tests can send calls through it.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tools.runner.binaries import binary
from tools.runner.ports import free_port
from tools.runner.process import ManagedProcess

BOOTSTRAP = """\
node: {{ id: concord-test-envoy, cluster: concord-gateway }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }} }}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services: [ {{ envoy_grpc: {{ cluster_name: xds_cluster }} }} ]
  cds_config: {{ ads: {{}}, resource_api_version: V3 }}
static_resources:
  listeners:
    - name: grpc
      address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listen_port} }} }}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: grpc
                route_config:
                  # The clusters arrive over ADS after start-up.
                  validate_clusters: false
                  virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes:
                        - match: {{ prefix: "/" }}
                          route:
                            cluster: {cluster}
                            retry_policy: {{ retry_on: "connect-failure,refused-stream,unavailable", num_retries: 2 }}
                http_filters:
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
    - name: xds_cluster
      type: STATIC
      connect_timeout: 1s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: {{ http2_protocol_options: {{}} }}
      load_assignment:
        cluster_name: xds_cluster
        endpoints:
          - lb_endpoints:
{registry_endpoints}
"""
REGISTRY_ENDPOINT = (
    "              - endpoint: {{ address: {{ socket_address: "
    "{{ address: 127.0.0.1, port_value: {port} }} }} }}"
)
READY_TIMEOUT_S = 60.0


@dataclass
class EnvoyAds:
    registry_port: int
    cluster: str
    work_dir: Path
    more_registry_ports: tuple[int, ...] = ()
    """Other registry replicas: the xds_cluster lists them all, as docs/registry.md asks."""
    admin_port: int = field(default_factory=free_port)
    listen_port: int = field(default_factory=free_port)
    process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.listen_port}"

    def start(self) -> EnvoyAds:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = self.work_dir / "envoy.yaml"
        config.write_text(
            BOOTSTRAP.format(
                admin_port=self.admin_port,
                listen_port=self.listen_port,
                registry_endpoints="\n".join(
                    REGISTRY_ENDPOINT.format(port=p)
                    for p in (self.registry_port, *self.more_registry_ports)
                ),
                cluster=self.cluster,
            )
        )
        self.process = ManagedProcess(
            name="envoy",
            argv=[
                str(binary("envoy")),
                "-c",
                str(config),
                "--disable-hot-restart",
                "--log-level",
                "warn",
            ],
            log_path=self.work_dir / "envoy.log",
        ).start()
        self.process.wait_until(lambda: self._admin("/ready") == "LIVE", READY_TIMEOUT_S)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def hosts(self, cluster: str) -> set[str]:
        """The endpoints Envoy's admin `/clusters` lists for `cluster`."""
        text = self._admin("/clusters") or ""
        return set(re.findall(rf"^{re.escape(cluster)}::([0-9.]+:\d+)::", text, re.MULTILINE))

    def _admin(self, path: str) -> str | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.admin_port}{path}", timeout=2
            ) as r:
                return str(r.read().decode().strip())
        except (urllib.error.URLError, OSError):
            return None
