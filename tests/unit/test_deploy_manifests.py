"""deploy/ describes the topology of `make up-cluster` for Kubernetes (docs/deploy.md,
"Kubernetes"). No cluster runs here, so this checks what can be checked offline: every object
is valid against the Kubernetes schemas kubernetes-validate ships, and every port, probe and
setting in the manifests is the one the code uses (runtime/catalogue.py, the settings modules,
the gateway's bootstrap, the NATS nodes' configuration)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from runtime import catalogue
from runtime.settings import REGISTRY_DEFAULT_METRICS_PORT, REGISTRY_DEFAULT_PORT
from tests.support.repo import REPO_ROOT, built, repo_path
from tools.deploy import bootstrap
from tools.deploy.kustomization import render
from tools.runner.binaries import binary
from tools.runner.gateway import Gateway
from tools.runner.topology import Scale, Topology

HEALTH_PORT = 8086
"""Where every gRPC process serves grpc.health.v1 alone, in plaintext, for the probes."""
KUBERNETES_VERSIONS = ("1.32.0", "1.37.0")
"""The oldest release still commonly run and the newest kubernetes-validate ships."""
SETTINGS_SOURCES = ("runtime", "registry", "services", "standins")
PENDING_SETTINGS: dict[str, str] = {}
"""Settings the manifests set for parts of issue #16 built beside them; each must leave this
list once the code reads it (test_pending_settings_are_not_yet_read_by_the_code)."""
OPERATOR_SECRETS = {"concord-database"} | {
    f"concord-tls-{name}" for name in ("registry", "orders", "inventory", "payments", "gateway")
}
OPERATOR_CONFIGMAPS = {"gateway-jwks"}
"""What the operator creates (docs/deploy.md lists each): passwords, keys, certificates."""
REPLICATED = ("registry", *(p.name for p in catalogue.shop_services()))


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render(repo_path("deploy/base"))


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env_of(workload: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, Any]:
    """Name -> value (or valueFrom) of every variable the container gets, envFrom included."""
    c = container(workload)
    env: dict[str, Any] = {}
    for source in c.get("envFrom", []):
        env.update(find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for var in c.get("env", []):
        env[var["name"]] = var.get("value", var.get("valueFrom"))
    return env


def port(c: dict[str, Any], name: str) -> int:
    return int(next(p["containerPort"] for p in c["ports"] if p["name"] == name))


def workloads(objects: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (o for o in objects if o["kind"] in ("Deployment", "StatefulSet"))


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_is_valid_against_the_kubernetes_schemas(
    objects: list[dict[str, Any]], version: str
) -> None:
    for o in objects:
        kubernetes_validate.validate(o, version, strict=True)


def test_a_misspelt_field_is_refused_by_the_schemas(objects: list[dict[str, Any]]) -> None:
    deployment = find(objects, "Deployment", "orders")
    misspelt = {**deployment, "spec": {**deployment["spec"], "replica": 2}}

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("name", REPLICATED)
def test_each_process_listens_where_the_catalogue_says_with_grpc_health_probes(
    objects: list[dict[str, Any]], name: str
) -> None:
    grpc_port, metrics_port = (
        (REGISTRY_DEFAULT_PORT, REGISTRY_DEFAULT_METRICS_PORT)
        if name == "registry"
        else (catalogue.process(name).default_port, catalogue.process(name).metrics_port)
    )
    deployment = find(objects, "Deployment", name)
    c = container(deployment)
    env = env_of(deployment, objects)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]

    assert deployment["spec"]["replicas"] == Scale().instances
    assert c["args"] == [name]
    assert (port(c, "grpc"), port(c, "metrics")) == (grpc_port, metrics_port)
    assert annotations["prometheus.io/port"] == str(metrics_port)
    prefix = f"CONCORD_{name.upper()}_"
    assert env[prefix + "PORT"] == str(grpc_port)
    assert env[prefix + "METRICS_PORT"] == str(metrics_port)
    assert env[prefix + "HOST"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    # The service port speaks mutual TLS, which Kubernetes' gRPC probes cannot: they ask the
    # plaintext health-only port (runtime/server.py `_health_port`).
    assert env[prefix + "HEALTH_PORT"] == str(HEALTH_PORT) == str(port(c, "health"))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"] == {"port": HEALTH_PORT}, probe  # grpc.health.v1, service ""
    service = find(objects, "Service", name if name != "registry" else "registry-headless")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {
        "grpc": grpc_port,
        "metrics": metrics_port,
    }
    assert service["spec"]["clusterIP"] == "None"


@pytest.mark.parametrize("process", catalogue.shop_services(), ids=lambda p: p.name)
def test_each_service_reads_its_own_database_from_the_secret(
    objects: list[dict[str, Any]], process: catalogue.Process
) -> None:
    env = env_of(find(objects, "Deployment", process.name), objects)

    assert env[f"CONCORD_{process.name.upper()}_DATABASE_URL"] == {
        "secretKeyRef": {"name": "concord-database", "key": process.name}
    }


def test_the_stand_in_is_not_deployed_and_payments_is_told_where_the_provider_is(
    objects: list[dict[str, Any]],
) -> None:
    standins = [p.name for p in catalogue.CATALOGUE if p.standin]
    names = {o["metadata"]["name"] for o in workloads(objects)}

    assert standins and not names & set(standins)
    assert "CONCORD_PAYGATE_ADDRESS" in env_of(find(objects, "Deployment", "payments"), objects)


def settings_the_code_reads() -> set[str]:
    """Every CONCORD_* variable named in the processes' code: literals, `PREFIX + "X"` with a
    literal prefix, and the per-process ones (`f"CONCORD_{name}_PORT"`, `prefix + "HOST"`)
    for every process."""
    names: set[str] = set()
    per_process: set[str] = set()
    for folder in SETTINGS_SOURCES:
        for source in sorted((REPO_ROOT / folder).rglob("*.py")):
            text = source.read_text()
            names |= set(re.findall(r'"(CONCORD_[A-Z0-9_]*[A-Z0-9])"', text))
            for const, prefix in re.findall(r'(\w+) = "(CONCORD_[A-Z0-9_]+_)"', text):
                names |= {prefix + s for s in re.findall(rf'\b{const} \+ "([A-Z0-9_]+)"', text)}
            per_process |= set(re.findall(r'f"CONCORD_\{[^}]+\}_([A-Z0-9_]+)"', text))
            for var in re.findall(r'(\w+) = f"CONCORD_\{[^}]+\}_"', text):
                per_process |= set(re.findall(rf'\b{var} \+ "([A-Z0-9_]+)"', text))
    processes = ["registry", *(p.name for p in catalogue.CATALOGUE)]
    return names | {f"CONCORD_{n.upper()}_{s}" for n in processes for s in per_process}


def test_the_scan_finds_the_settings_it_should() -> None:
    read = settings_the_code_reads()

    assert {
        "CONCORD_NATS_URL",
        "CONCORD_REGISTRY_PROBE_INTERVAL_S",
        "CONCORD_ORDERS_DATABASE_URL",
        "CONCORD_PAYMENTS_METRICS_PORT",
        "CONCORD_REGISTRY_HOST",
        "CONCORD_PAYGATE_ADDRESS",
    } <= read
    assert "CONCORD_ORDERS_COLOUR" not in read


def test_every_setting_in_the_manifests_is_one_the_code_reads(
    objects: list[dict[str, Any]],
) -> None:
    read = settings_the_code_reads()
    for workload in workloads(objects):
        unknown = {
            name
            for name in env_of(workload, objects)
            if name.startswith("CONCORD_") and name not in read and name not in PENDING_SETTINGS
        }
        assert not unknown, f"{workload['metadata']['name']} sets what no code reads: {unknown}"


def test_pending_settings_are_not_yet_read_by_the_code() -> None:
    """Once the HA registry or mTLS lands, its names leave PENDING_SETTINGS and are checked
    like every other."""
    assert not set(PENDING_SETTINGS) & settings_the_code_reads()


def test_what_the_operator_creates_is_named_in_the_docs(objects: list[dict[str, Any]]) -> None:
    secrets, configmaps = set(), set()
    for workload in workloads(objects):
        spec = workload["spec"]["template"]["spec"]
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                secrets.add(volume["secret"]["secretName"])
            if "configMap" in volume:
                configmaps.add(volume["configMap"]["name"])
        for var in container(workload).get("env", []):
            ref = var.get("valueFrom", {})
            if "secretKeyRef" in ref:
                secrets.add(ref["secretKeyRef"]["name"])
            if "configMapKeyRef" in ref:
                configmaps.add(ref["configMapKeyRef"]["name"])
    defined = {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"}
    docs = repo_path("docs/deploy.md").read_text()

    assert secrets == OPERATOR_SECRETS
    assert configmaps - defined == OPERATOR_CONFIGMAPS
    for name in sorted(OPERATOR_SECRETS | OPERATOR_CONFIGMAPS):
        assert name in docs, f"docs/deploy.md does not say to create {name}"


def test_every_workload_is_non_root_read_only_bounded_and_covered_by_a_disruption_budget(
    objects: list[dict[str, Any]],
) -> None:
    budgets = {
        tuple(sorted(o["spec"]["selector"]["matchLabels"].items()))
        for o in objects
        if o["kind"] == "PodDisruptionBudget"
    }
    for workload in workloads(objects):
        name = workload["metadata"]["name"]
        pod = workload["spec"]["template"]["spec"]
        c = container(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["automountServiceAccountToken"] is False, name
        assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert c["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert {"requests", "limits"} <= set(c["resources"]), name
        assert "memory" in c["resources"]["limits"], name
        labels = tuple(sorted(workload["spec"]["selector"]["matchLabels"].items()))
        assert labels in budgets, f"{name} has no PodDisruptionBudget"


def test_the_nats_cluster_is_three_nodes_with_durable_jetstream(
    objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    nats = find(objects, "StatefulSet", "nats")
    config = find(objects, "ConfigMap", "nats-config")["data"]["nats.conf"]
    platform = find(objects, "ConfigMap", "concord-platform")["data"]
    replicas = nats["spec"]["replicas"]
    client_port = port(container(nats), "client")

    assert replicas == 3 and platform["CONCORD_NATS_REPLICAS"] == str(Scale().nats_replicas)
    assert platform["CONCORD_NATS_URL"].split(",") == [
        f"nats://nats-{k}.nats:{client_port}" for k in range(replicas)
    ]
    assert re.search(r"^\s*sync_interval: always$", config, re.MULTILINE)
    routes = re.findall(r"nats-route://(nats-\d)\.nats:(\d+)", config)
    assert routes == [(f"nats-{k}", str(port(container(nats), "cluster"))) for k in range(3)]
    assert find(objects, "Service", "nats")["spec"]["publishNotReadyAddresses"] is True
    # nats-server itself parses the configuration (-t: test it and exit).
    conf = tmp_path / "nats.conf"
    conf.write_text(config)
    result = subprocess.run(
        [str(binary("nats-server")), "-c", str(conf), "-t"],
        env={"POD_NAME": "nats-0"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_bootstrap_configmap_is_current() -> None:
    expected = bootstrap.configmap(REPO_ROOT, built("gateway/transcoder.binpb"))

    assert repo_path(bootstrap.BOOTSTRAP_PATH).read_text() == expected, (
        "run `python -m tools.deploy` and commit what it writes"
    )


def test_envoy_accepts_the_cluster_bootstrap(tmp_path: Path) -> None:
    """`envoy --mode validate` loads every filter, route and cluster as a start would, with
    this machine's paths for the files the image holds in the cluster."""
    config = bootstrap.cluster_bootstrap(
        REPO_ROOT, built("gateway/transcoder.binpb"), files_in_image=False
    )
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [str(binary("envoy")), "--mode", "validate", "-c", str(path), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_the_gateway_mounts_what_its_bootstrap_names(objects: list[dict[str, Any]]) -> None:
    gateway = find(objects, "Deployment", "gateway")
    c = container(gateway)
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in gateway["spec"]["template"]["spec"]["volumes"]}
    config = yaml.safe_load(find(objects, "ConfigMap", "gateway-bootstrap")["data"]["envoy.yaml"])
    listener = config["static_resources"]["listeners"][0]["address"]["socket_address"]
    xds = next(c for c in config["static_resources"]["clusters"] if c["name"] == "xds_cluster")
    xds_address = xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    registry = find(objects, "Service", bootstrap.REGISTRY_HEADLESS)

    assert c["args"] == ["gateway"]
    assert port(c, "http") == listener["port_value"] == Topology(Path("/")).gateway_port
    assert listener["address"] == "0.0.0.0"
    assert volumes["bootstrap"]["configMap"]["name"] == bootstrap.CONFIGMAP_NAME
    assert mounts["bootstrap"] == str(Path(bootstrap.BOOTSTRAP_MOUNT).parent)
    assert mounts["jwks"] == str(Path(bootstrap.JWKS_MOUNT).parent)
    assert xds_address["address"]["socket_address"] == {
        "address": bootstrap.REGISTRY_HEADLESS,
        "port_value": REGISTRY_DEFAULT_PORT,
    }
    assert registry["spec"]["clusterIP"] == "None"
    assert bootstrap.BOOTSTRAP_MOUNT in repo_path("deploy/image/entrypoint.sh").read_text()


def test_the_image_entry_point_runs_each_process_from_its_package() -> None:
    script = repo_path("deploy/image/entrypoint.sh").read_text()
    cases = dict(re.findall(r"^\s*(\w+)\) exec python3 -m ([\w.]+)", script, re.MULTILINE))

    assert cases == {
        "registry": "registry",
        **{p.name: p.package for p in catalogue.CATALOGUE},
    }


def test_the_image_runs_envoy_with_the_flags_make_up_uses() -> None:
    script = repo_path("deploy/image/entrypoint.sh").read_text().replace("\\\n", " ")
    gateway = Gateway(Topology(Path("/")), REPO_ROOT, Path("/unused"))
    flags = gateway.argv()[3:]  # after the binary and `-c <config>`

    assert re.search(
        rf"exec envoy -c {bootstrap.BOOTSTRAP_MOUNT}\s+" + r"\s+".join(map(re.escape, flags)),
        script,
    )
