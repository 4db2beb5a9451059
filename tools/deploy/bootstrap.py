"""Envoy's bootstrap for Kubernetes (deploy/base/gateway-bootstrap.yaml), rendered from the same
template and code as `make up`'s (tools/runner/gateway.py), then moved into the cluster.

What differs in a cluster is where things are, not what Envoy does: the listener takes
connections on every address of the pod (a Service sends them), the registry is every replica
behind the headless Service `registry-headless` (Envoy resolves it with STRICT_DNS and keeps
an endpoint per pod, so ADS and reflection go on while one replica dies), and the files the
bootstrap names are where the image (deploy/image/Dockerfile) and the mounted JWKS put them.
The rewrite is structural, on the parsed bootstrap, so edits to the template carry over; a
local path the rewrite does not know fails the generator instead of reaching the cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tools.runner.gateway import descriptor_set_in, gateway_dir, render_config
from tools.runner.gateway_settings import GatewaySettings
from tools.runner.topology import Topology
from tools.runner.ui_routes import UI_DIR, static_files, ui_root

IMAGE_ROOT = "/app"
"""Where deploy/image/Dockerfile puts the repository's files in the image."""
IMAGE_GATEWAY_DIR = f"{IMAGE_ROOT}/gateway"
"""The descriptor set, openapi.json and the browser pages (gateway/ui) in the image."""
JWKS_MOUNT = "/etc/concord/jwks/jwks.json"
"""The `gateway-jwks` ConfigMap's `jwks.json`: the operator's signing keys, never the dev ones."""
BOOTSTRAP_MOUNT = "/etc/concord/gateway/envoy.yaml"
REGISTRY_HEADLESS = "registry-headless"
"""The headless Service whose DNS name lists every registry pod (deploy/base/registry.yaml)."""
LISTEN_ALL = "0.0.0.0"
REGISTRY_CLUSTERS = ("xds_cluster", "public_reflection")
"""The bootstrap's clusters that reach the registry: ADS, and reflection for grpcurl."""
OTLP_CLUSTER = "otlp_collector"
OTLP_DEFAULT = ("127.0.0.1", 4317)
"""A collector beside Envoy (a sidecar or a node agent on the pod's loopback); the generator
ignores OTEL_EXPORTER_OTLP_ENDPOINT so its output depends on the repository alone."""
BOOTSTRAP_PATH = "deploy/base/gateway-bootstrap.yaml"
CONFIGMAP_NAME = "gateway-bootstrap"


def image_paths(repo_root: Path, descriptor_set: Path) -> dict[str, str]:
    """Each local file the rendered bootstrap names -> where it is inside the cluster."""
    openapi = descriptor_set.parent / "openapi.json"
    paths = {
        str(descriptor_set.absolute()): f"{IMAGE_GATEWAY_DIR}/transcoder.binpb",
        str(openapi.absolute()): f"{IMAGE_GATEWAY_DIR}/openapi.json",
        str((gateway_dir(repo_root) / "jwks.json").absolute()): JWKS_MOUNT,
    }
    ui_folders = (repo_root / UI_DIR, ui_root(repo_root))
    for f in static_files(repo_root, openapi):
        if f.source == openapi:
            continue
        source = f.source.absolute()
        for folder in ui_folders:
            if source.is_relative_to(folder.absolute()):
                relative = source.relative_to(folder.absolute()).as_posix()
                paths[str(source)] = f"{IMAGE_GATEWAY_DIR}/ui/{relative}"
                break
        else:
            raise ValueError(f"{source}: a page outside {UI_DIR}, with no place in the image")
    return paths


def _replace_strings(node: Any, replace: Callable[[str], str]) -> Any:
    if isinstance(node, dict):
        return {key: _replace_strings(value, replace) for key, value in node.items()}
    if isinstance(node, list):
        return [_replace_strings(item, replace) for item in node]
    return replace(node) if isinstance(node, str) else node


def _socket(host: str, port: int) -> dict[str, Any]:
    return {"address": {"socket_address": {"address": host, "port_value": port}}}


def _point_at(cluster: dict[str, Any], host: str, port: int, dns: bool) -> None:
    """The cluster's endpoints: one address, or (dns) every address its name resolves to."""
    cluster.pop("type", None)
    if dns:
        cluster["cluster_type"] = {
            "name": "envoy.cluster.dns",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.clusters.dns.v3.DnsCluster",
                "respect_dns_ttl": True,
                "dns_lookup_family": "V4_PREFERRED",
            },
        }
    else:
        cluster["type"] = "STATIC"
    cluster["load_assignment"] = {
        "cluster_name": cluster["name"],
        "endpoints": [{"lb_endpoints": [{"endpoint": _socket(host, port)}]}],
    }


def cluster_bootstrap(
    repo_root: Path, descriptor_set: Path | None = None, *, files_in_image: bool = True
) -> dict[str, Any]:
    """The bootstrap `make up` would render, with the default ports, moved into the cluster.
    `files_in_image=False` keeps this machine's paths, so `envoy --mode validate` can load
    the files it names (tests/unit/test_deploy_manifests.py)."""
    descriptor_set = descriptor_set or descriptor_set_in(repo_root)
    topology = Topology(data_dir=Path("/var/lib/concord"))
    rendered = render_config(topology, repo_root, descriptor_set, GatewaySettings())
    bootstrap = yaml.safe_load(rendered)
    if files_in_image:
        paths = image_paths(repo_root, descriptor_set)
        bootstrap = _replace_strings(bootstrap, lambda s: paths.get(s, s))
    for listener in bootstrap["static_resources"]["listeners"]:
        listener["address"]["socket_address"]["address"] = LISTEN_ALL
    clusters = {c["name"]: c for c in bootstrap["static_resources"]["clusters"]}
    for name in REGISTRY_CLUSTERS:
        _point_at(clusters[name], REGISTRY_HEADLESS, topology.registry_port, dns=True)
    _point_at(clusters[OTLP_CLUSTER], *OTLP_DEFAULT, dns=False)
    leftovers = [s for s in _strings(bootstrap) if str(repo_root.absolute()) in s]
    if files_in_image and leftovers:
        raise ValueError(f"local paths with no place in the cluster: {leftovers}")
    return dict(bootstrap)


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return [node] if isinstance(node, str) else []


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings (the bootstrap, its Lua filters) as `|` blocks a reader can follow."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _represent_str)


def configmap(repo_root: Path, descriptor_set: Path | None = None) -> str:
    """deploy/base/gateway-bootstrap.yaml: the bootstrap as the ConfigMap the gateway mounts."""
    bootstrap = yaml.dump(
        cluster_bootstrap(repo_root, descriptor_set),
        Dumper=_LiteralDumper,
        sort_keys=False,
        width=100,
    )
    document = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": CONFIGMAP_NAME,
            "labels": {"app.kubernetes.io/name": "gateway", "app.kubernetes.io/part-of": "concord"},
        },
        "data": {"envoy.yaml": bootstrap},
    }
    header = (
        "# Generated by `python -m tools.deploy` from gateway/envoy.yaml.tmpl (tools/deploy/\n"
        "# bootstrap.py says what it changes for a cluster). Do not edit: change the template or\n"
        "# the generator and run it again; tests/unit/test_deploy_manifests.py fails when stale.\n"
    )
    return header + yaml.dump(document, Dumper=_LiteralDumper, sort_keys=False, width=100)
