"""The contract registry with real buf: breaking versions are refused with buf's findings,
compatible ones become the next version, and a fetched version is the set that was published,
enough to generate a client."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from concord.registry.v1 import contracts_service_pb2, contracts_service_pb2_grpc

from tests.support.buf_workspace import copy_buf_workspace
from tests.support.registry_process import ConcordProcess
from tests.support.repo import repo_path
from tools.devstack import cli, registry_cli


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A throwaway copy of the buf workspace and the published record, to edit freely."""
    root = copy_buf_workspace(tmp_path / "ws")
    (root / "contracts").mkdir()
    shutil.copy(repo_path("contracts/published.json"), root / "contracts/published.json")
    return root


@pytest.fixture
def channel(registry: ConcordProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(registry.address) as channel:
        yield channel


def stub(channel: grpc.Channel) -> contracts_service_pb2_grpc.ContractsServiceStub:
    return contracts_service_pb2_grpc.ContractsServiceStub(channel)


def edit(root: Path, relative: str, old: str, new: str) -> None:
    path = root / "proto" / relative
    text = path.read_text()
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new, 1))


def build(root: Path) -> bytes:
    return registry_cli.buf_build(root, "proto", root / "candidate.binpb")


def publish(
    channel: grpc.Channel, root: Path, label: str
) -> contracts_service_pb2.PublishContractResponse:
    return stub(channel).PublishContract(
        contracts_service_pb2.PublishContractRequest(
            label=label, descriptor_set=build(root), sources=registry_cli.repo_sources(root)
        ),
        timeout=120,
    )


ADD_NOTE = (
    "shop/orders/v1/orders.proto",
    "  string rejection_reason = 7;\n",
    "  string rejection_reason = 7;\n  // A note from the customer.\n  string note = 11;\n",
)


def test_publishing_from_the_repo_is_one_command_and_agrees_with_the_record(
    channel: grpc.Channel, workspace: Path
) -> None:
    report = registry_cli.publish_repo(channel, workspace, "first")
    assert report[-2:] == [
        f"published version {len(report) - 1} (first)",
        "recorded it in contracts/published.json",
    ]
    record = (workspace / "contracts/published.json").read_bytes()
    assert record == registry_cli.buf_build(
        workspace, "proto", workspace / "bare.json", "--exclude-source-info"
    )
    latest = stub(channel).GetContract(contracts_service_pb2.GetContractRequest(version=0))
    assert latest.contract.descriptor_set == build(workspace)
    again = registry_cli.publish_repo(channel, workspace, "second")
    assert again == [f"already published as version {latest.contract.version} (first)"]


def test_an_empty_registry_is_seeded_from_the_record_when_proto_moved_on(
    channel: grpc.Channel, workspace: Path
) -> None:
    recorded = (workspace / "contracts/published.json").read_bytes()
    edit(workspace, *ADD_NOTE)
    report = registry_cli.publish_repo(channel, workspace, "with-note")
    assert report[:2] == [
        "seeded version 1 from contracts/published.json",
        "published version 2 (with-note)",
    ]
    assert (workspace / "contracts/published.json").read_bytes() != recorded


def test_breaking_change_is_refused_with_buf_findings(
    channel: grpc.Channel, workspace: Path
) -> None:
    publish(channel, workspace, "base")
    edit(workspace, "shop/orders/v1/orders.proto", "  string rejection_reason = 7;\n", "")
    with pytest.raises(grpc.RpcError) as caught:
        publish(channel, workspace, "without-rejection-reason")
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "rejection_reason" in caught.value.details()
    check = stub(channel).CheckCompatibility(
        contracts_service_pb2.CheckCompatibilityRequest(descriptor_set=build(workspace))
    )
    assert not check.compatible
    assert any("rejection_reason" in line for line in check.violations)
    listed = stub(channel).ListContracts(contracts_service_pb2.ListContractsRequest())
    assert [c.label for c in listed.contracts] == ["base"]


def test_compatible_change_becomes_the_next_version_and_fetches_back_unchanged(
    channel: grpc.Channel, workspace: Path
) -> None:
    publish(channel, workspace, "base")
    edit(workspace, *ADD_NOTE)
    sent = build(workspace)
    published = publish(channel, workspace, "with-note")
    assert published.contract.version == 2

    latest = stub(channel).GetContract(contracts_service_pb2.GetContractRequest(version=0))
    assert latest.contract.version == 2
    assert latest.contract.descriptor_set == sent
    assert dict(latest.contract.sources) == registry_cli.repo_sources(workspace)
    listed = stub(channel).ListContracts(contracts_service_pb2.ListContractsRequest())
    assert [c.version for c in listed.contracts] == [2, 1]
    diff = stub(channel).DiffContracts(
        contracts_service_pb2.DiffContractsRequest(from_version=1, to_version=2)
    )
    assert [(c.path, c.kind) for c in diff.changes] == [
        ("shop/orders/v1/orders.proto", contracts_service_pb2.FileChange.KIND_MODIFIED)
    ]
    assert "+  string note = 11;" in diff.changes[0].unified_diff


def test_a_client_generates_from_the_fetched_descriptor_set(
    registry: ConcordProcess, channel: grpc.Channel, workspace: Path, tmp_path: Path
) -> None:
    registry_cli.publish_repo(channel, workspace, "base")
    fetched = tmp_path / "contracts.binpb"
    status = cli.main(["contracts", "--registry", registry.address, "get", "--out", str(fetched)])
    assert status == 0
    out = tmp_path / "generated"
    out.mkdir()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--descriptor_set_in={fetched}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            "shop/inventory/v1/inventory_service.proto",
        ],
        check=True,
        capture_output=True,
    )
    assert (out / "shop/inventory/v1/inventory_service_pb2_grpc.py").exists()


def test_bad_publication_gets_every_field_violation(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub(channel).PublishContract(
            contracts_service_pb2.PublishContractRequest(label="", descriptor_set=b"\xff\x00")
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "label" in caught.value.details()
    assert "descriptor_set" in caught.value.details()
