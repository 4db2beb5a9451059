"""Dev CLI commands that talk to the registry.

    python -m tools.devstack services                      instances, health, contract served
    python -m tools.devstack contracts list                published versions
    python -m tools.devstack contracts get [--version N] --out x.binpb [--sources-dir DIR]
    python -m tools.devstack contracts check               judge proto/ per channel, publish nothing
    python -m tools.devstack contracts publish [--label L] publish proto/ in one step
    python -m tools.devstack contracts diff FROM TO        unified diff of two versions

`contracts publish` seeds an empty registry with contracts/published.json (the repository's
record of the last published contracts) when proto/ differs from it, publishes proto/ on top
(the registry refuses it if it breaks any channel of the latest version) and rewrites
contracts/published.json, so the repository and the registry agree.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from runtime.transport_security import blocking_channel
from tools.runner.binaries import binary
from tools.runner.topology import Topology

PUBLISHED_IMAGE = "contracts/published.json"
SOURCE_ROOTS = ("proto", "third_party/googleapis")
REGISTRY_CALL_TIMEOUT_S = 120.0
"""Publishing runs buf on the registry side: allow it time."""


def add_commands(commands: Any) -> None:
    services = commands.add_parser("services", help="registered instances and their health")
    services.add_argument("--registry", help="host:port (default: the topology's registry)")
    contracts = commands.add_parser("contracts", help="published contracts in the registry")
    contracts.add_argument("--registry", help="host:port (default: the topology's registry)")
    actions = contracts.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="published versions, newest first")
    get = actions.add_parser("get", help="fetch a version's descriptor set and sources")
    get.add_argument("--version", type=int, default=0, help="0 (default) for the latest")
    get.add_argument("--out", type=Path, required=True, help="where to write the descriptor set")
    get.add_argument("--sources-dir", type=Path, help="also write the .proto sources here")
    actions.add_parser("check", help="judge proto/ against the latest version, per channel")
    publish = actions.add_parser("publish", help="publish proto/ as the next version")
    publish.add_argument("--label", help="default: the git commit and the time")
    diff = actions.add_parser("diff", help="what changed between two versions")
    diff.add_argument("from_version", type=int)
    diff.add_argument("to_version", type=int)


def run(args: argparse.Namespace, topology: Topology, repo_root: Path) -> int:
    _stubs_importable(repo_root)
    address = args.registry or f"127.0.0.1:{topology.registry_port}"
    try:
        with blocking_channel(address) as channel:
            if args.command == "services":
                return _services(channel)
            if args.action == "list":
                return _list(channel)
            if args.action == "get":
                return _get(channel, args.version, args.out, args.sources_dir)
            if args.action == "diff":
                return _diff(channel, args.from_version, args.to_version)
            if args.action == "check":
                return check_repo(channel, repo_root)
            for line in publish_repo(channel, repo_root, args.label or default_label(repo_root)):
                print(line)
            return 0
    except grpc.RpcError as error:
        print(f"registry {address}: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1


def _stubs_importable(repo_root: Path) -> None:
    """Outside Bazel the generated stubs live in bazel-bin/proto (`make build`)."""
    try:
        import concord.registry.v1.registry_pb2  # noqa: F401
    except ImportError:
        sys.path.append(str(repo_root / "bazel-bin" / "proto"))


def _discovery(channel: grpc.Channel) -> Any:
    from concord.registry.v1 import discovery_service_pb2_grpc

    return discovery_service_pb2_grpc.DiscoveryServiceStub(channel)


def _contracts(channel: grpc.Channel) -> Any:
    from concord.registry.v1 import contracts_service_pb2_grpc

    return contracts_service_pb2_grpc.ContractsServiceStub(channel)


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _services(channel: grpc.Channel) -> int:
    from concord.registry.v1 import discovery_service_pb2, registry_pb2

    reply = _discovery(channel).ListInstances(discovery_service_pb2.ListInstancesRequest())
    rows: list[tuple[str, ...]] = [
        ("service", "address", "health", "contract", "routable", "version", "instance", "lease")
    ]
    excluded = []
    for i in reply.instances:
        health = registry_pb2.HealthStatus.Name(i.health).removeprefix("HEALTH_STATUS_")
        expires = i.lease_expire_time.ToDatetime(datetime.UTC).strftime("%H:%M:%S")
        routable = "yes" if i.routable else "NO"
        contract = contract_served(i)
        rows.append(
            (
                i.service_name,
                i.address,
                health,
                contract,
                routable,
                i.version,
                i.instance_id,
                expires,
            )
        )
        if not i.routable:
            excluded.append(f"{i.address} {i.service_name}: {i.exclusion_reason}")
            excluded.extend(f"    {finding}" for finding in i.exclusion_findings)
    print(_table(rows) if reply.instances else "no instance registered")
    if excluded:
        print("\nkept out of traffic:\n" + "\n".join(excluded))
    return 0


def contract_served(instance: Any) -> str:
    """ "v3" for a published contract, "unpublished sha256:1a2b3c4d5e6f" otherwise, "unknown"
    when the instance reported no fingerprint."""
    if not instance.contract_fingerprint:
        return "unknown"
    if instance.contract_version:
        return f"v{instance.contract_version}"
    return f"unpublished {instance.contract_fingerprint[:19]}"


def _list(channel: grpc.Channel) -> int:
    from concord.registry.v1 import contracts_service_pb2

    reply = _contracts(channel).ListContracts(contracts_service_pb2.ListContractsRequest())
    rows = [("version", "label", "published", "sha256")]
    for c in reply.contracts:
        when = c.publish_time.ToDatetime(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
        rows.append((str(c.version), c.label, when, c.sha256[:16]))
    print(_table(rows) if reply.contracts else "no contract published")
    return 0


def _get(channel: grpc.Channel, version: int, out: Path, sources_dir: Path | None) -> int:
    from concord.registry.v1 import contracts_service_pb2

    contract = (
        _contracts(channel)
        .GetContract(contracts_service_pb2.GetContractRequest(version=version))
        .contract
    )
    out.write_bytes(contract.descriptor_set)
    print(f"version {contract.version} ({contract.label}): descriptor set -> {out}")
    if sources_dir is not None:
        for path, text in contract.sources.items():
            target = sources_dir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        print(f"{len(contract.sources)} sources -> {sources_dir}")
    return 0


def _diff(channel: grpc.Channel, from_version: int, to_version: int) -> int:
    from concord.registry.v1 import contracts_service_pb2

    reply = _contracts(channel).DiffContracts(
        contracts_service_pb2.DiffContractsRequest(from_version=from_version, to_version=to_version)
    )
    for change in reply.changes:
        print(change.unified_diff or f"{change.path}: {change.kind}")
    return 0


def check_repo(channel: grpc.Channel, repo_root: Path) -> int:
    """Prints the registry's verdict on proto/, channel by channel; 1 when anything breaks."""
    from concord.registry.v1 import contracts_service_pb2

    with tempfile.TemporaryDirectory(prefix="concord-check-") as tmp:
        candidate = buf_build(repo_root, "proto", Path(tmp) / "candidate.binpb")
    reply = _contracts(channel).CheckCompatibility(
        contracts_service_pb2.CheckCompatibilityRequest(descriptor_set=candidate),
        timeout=REGISTRY_CALL_TIMEOUT_S,
    )
    print("\n".join(verdict_lines(reply)))
    return 0 if reply.compatible else 1


def verdict_lines(reply: Any) -> list[str]:
    """One line per channel, then its findings indented, then the consumers it breaks."""
    from concord.registry.v1 import contracts_service_pb2

    lines = []
    for verdict in reply.channels:
        name = contracts_service_pb2.Channel.Name(verdict.channel).removeprefix("CHANNEL_")
        lines.append(f"{name.lower()}: {'compatible' if verdict.compatible else 'BREAKING'}")
        for f in verdict.findings:
            consumers = f" (breaks {', '.join(f.consumers)})" if f.consumers else ""
            lines.append(f"  {f.file}:{f.line} {f.rule} {f.message}{consumers}")
    if reply.broken_consumers:
        lines.append(f"broken consumers: {', '.join(reply.broken_consumers)}")
    return lines


def default_label(repo_root: Path) -> str:
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{commit or 'nogit'}-{stamp}"


def buf_build(repo_root: Path, source: str, out: Path, *extra: str) -> bytes:
    env = {**os.environ, "BUF_CACHE_DIR": str(repo_root / ".data" / "cache" / "buf")}
    subprocess.run(
        [str(binary("buf")), "build", source, "-o", str(out), *extra],
        cwd=repo_root,
        env=env,
        check=True,
        capture_output=True,
    )
    return out.read_bytes()


def repo_sources(repo_root: Path) -> dict[str, str]:
    """The .proto files buf builds from, by import path."""
    sources = {}
    for root in SOURCE_ROOTS:
        for path in sorted((repo_root / root).rglob("*.proto")):
            sources[path.relative_to(repo_root / root).as_posix()] = path.read_text()
    return sources


def publish_repo(channel: grpc.Channel, repo_root: Path, label: str) -> list[str]:
    """Seeds, publishes and records the repository's contracts; returns what it did."""
    from concord.registry.v1 import contracts_service_pb2

    stub = _contracts(channel)
    report = []
    with tempfile.TemporaryDirectory(prefix="concord-publish-") as tmp:
        folder = Path(tmp)
        current = buf_build(repo_root, "proto", folder / "current.binpb")
        bare = buf_build(repo_root, "proto", folder / "bare.binpb", "--exclude-source-info")
        listed = stub.ListContracts(contracts_service_pb2.ListContractsRequest()).contracts
        if not listed:
            seed = buf_build(repo_root, PUBLISHED_IMAGE, folder / "seed.binpb")
            if seed != bare:
                reply = stub.PublishContract(
                    contracts_service_pb2.PublishContractRequest(
                        label=f"seed:{PUBLISHED_IMAGE}", descriptor_set=seed
                    ),
                    timeout=REGISTRY_CALL_TIMEOUT_S,
                )
                report.append(f"seeded version {reply.contract.version} from {PUBLISHED_IMAGE}")
        elif listed[0].sha256 == hashlib.sha256(current).hexdigest():
            report.append(f"already published as version {listed[0].version} ({listed[0].label})")
            return report
        sources = repo_sources(repo_root)
        reply = stub.PublishContract(
            contracts_service_pb2.PublishContractRequest(
                label=label, descriptor_set=current, sources=sources
            ),
            timeout=REGISTRY_CALL_TIMEOUT_S,
        )
        report.append(f"published version {reply.contract.version} ({label})")
        (repo_root / PUBLISHED_IMAGE).write_bytes(
            buf_build(repo_root, "proto", folder / "published.json", "--exclude-source-info")
        )
        report.append(f"recorded it in {PUBLISHED_IMAGE}")
    return report
