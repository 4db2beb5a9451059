"""The TypeScript client (clients/typescript) generated from a registry and run against the
whole shop through Envoy over gRPC, Connect and REST: real registry, NATS, services, Envoy,
buf, protoc-gen-es and Node.

The contracts are published to this test's registry the way `devstack contracts publish` does
it, the client's generate.sh fetches them back from there, and `node --test` runs the client's
own tests with the gateway's address and development tokens in its environment. Node's output
goes to the test log whatever the outcome.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from tests.support.buf_workspace import copy_buf_workspace
from tests.support.gateway import admin_token, token_for
from tests.support.processes import ServiceRunner
from tests.support.repo import REPO_ROOT, built, repo_path
from tools.devstack import registry_cli
from tools.runner.gateway import Gateway

CLIENT = "clients/typescript"
CLIENT_FILES = (
    ".npmrc",
    "buf.gen.yaml",
    "generate.sh",
    "package.json",
    "package-lock.json",
    "tsconfig.json",
)
NODE_TESTS = 8
"""Test cases in src/shop.test.ts: every one must run and pass, none skipped."""
STEP_TIMEOUT_S = 300.0


def node_modules() -> Path:
    """The workspace's clients/typescript/node_modules, installed by tools/setup.sh.

    Under Bazel the lockfile's runfile is a symlink into the workspace, so resolving it finds
    the folder setup.sh installed into (clients/typescript/BUILD.bazel says why it is not data).
    """
    lockfile = repo_path(f"{CLIENT}/package-lock.json").resolve()
    modules = lockfile.parent / "node_modules"
    stamp = modules / ".concord-lock.sha256"
    want = hashlib.sha256(lockfile.read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text().strip() != want:
        pytest.fail(f"{modules} does not match {CLIENT}/package-lock.json: run tools/setup.sh")
    return modules


def client_copy(root: Path) -> Path:
    """The client's sources in a folder of the test's own, beside the installed node_modules."""
    for name in CLIENT_FILES:
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(repo_path(f"{CLIENT}/{name}"), target)
    (root / "src").mkdir()
    for source in sorted((REPO_ROOT / CLIENT / "src").glob("*.ts")):
        shutil.copy(source, root / "src" / source.name)
    (root / "node_modules").symlink_to(node_modules(), target_is_directory=True)
    return root


def publish_contracts(registry_address: str, workspace: Path) -> None:
    """`devstack contracts publish` against this test's registry, from a copy of the repo's
    buf workspace, so the repository's record is not rewritten."""
    copy_buf_workspace(workspace)
    (workspace / "contracts").mkdir()
    shutil.copy(repo_path("contracts/published.json"), workspace / "contracts/published.json")
    with grpc.insecure_channel(registry_address) as channel:
        report = registry_cli.publish_repo(channel, workspace, "typescript-client-test")
    assert report[-1] == "recorded it in contracts/published.json", report


def run(step: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        step,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        check=False,
    )


def test_typescript_client_generated_from_the_registry_places_and_reads_an_order(
    services: ServiceRunner, gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    services.start_shop()
    publish_contracts(services.registry_address, tmp_path / "ws")
    client = client_copy(tmp_path / "client")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "CONCORD_ROOT": str(REPO_ROOT),
        "CONCORD_PYTHON": sys.executable,
        "BUF_CACHE_DIR": str(tmp_path / "buf-cache"),
    }

    generated = run(
        [
            "bash",
            "generate.sh",
            "--registry",
            services.registry_address,
            "--openapi",
            str(built("gateway/openapi.json")),
        ],
        client,
        env,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert (client / "src/gen/shop/orders/v1/orders_service_pb.ts").exists()
    compiled = run([str(client / "node_modules/.bin/tsc"), "-p", "."], client, env)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr

    node = shutil.which("node")
    assert node is not None, "node is not on PATH: tools/setup.sh needs Node 20 or newer"
    tested = run(
        [
            node,
            "--test",
            "--test-reporter=spec",
            "--test-reporter-destination=stdout",
            "--test-reporter=tap",
            "--test-reporter-destination=" + str(tmp_path / "node.tap"),
            "dist/",
        ],
        client,
        {
            **env,
            "CONCORD_GATEWAY_URL": f"http://127.0.0.1:{gateway.topology.gateway_port}",
            "CONCORD_CUSTOMER_TOKEN": token_for("ts-alice"),
            "CONCORD_OTHER_CUSTOMER_TOKEN": token_for("ts-bob"),
            "CONCORD_ADMIN_TOKEN": admin_token(),
        },
    )
    with capsys.disabled():
        print(f"\n--- node --test (exit {tested.returncode}) ---\n{tested.stdout}{tested.stderr}")
    tap = (tmp_path / "node.tap").read_text()
    counts = {
        k: int(v) for k, v in re.findall(r"^# (pass|fail|skipped|todo|cancelled) (\d+)$", tap, re.M)
    }
    assert tested.returncode == 0, "node --test failed: its output is above"
    assert counts == {"pass": NODE_TESTS, "fail": 0, "skipped": 0, "todo": 0, "cancelled": 0}, tap
