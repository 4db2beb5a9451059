"""`buf breaking` against the published contracts bites on breaking edits and lets additions by."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.buf_workspace import copy_buf_workspace
from tests.support.repo import repo_path
from tools.runner.binaries import binary


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A throwaway copy of the buf workspace: proto/, google/api protos and buf.yaml."""
    return copy_buf_workspace(tmp_path / "ws")


def buf_breaking(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BUF_CACHE_DIR": str(root.parent / "buf-cache")}
    return subprocess.run(
        [
            str(binary("buf")),
            "breaking",
            "proto",
            "--against",
            str(repo_path("contracts/published.json")),
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def edit(root: Path, relative: str, old: str, new: str) -> None:
    path = root / "proto" / relative
    text = path.read_text()
    assert old in text, f"{old!r} not in {relative}"
    path.write_text(text.replace(old, new, 1))


def test_unchanged_contracts_pass(workspace: Path) -> None:
    result = buf_breaking(workspace)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deleting_a_field_is_breaking(workspace: Path) -> None:
    edit(workspace, "shop/orders/v1/orders.proto", "  string rejection_reason = 7;\n", "")
    result = buf_breaking(workspace)
    assert result.returncode != 0
    assert "rejection_reason" in result.stdout + result.stderr


def test_renaming_an_rpc_is_breaking(workspace: Path) -> None:
    edit(workspace, "shop/orders/v1/orders_service.proto", "rpc CancelOrder(", "rpc AbandonOrder(")
    result = buf_breaking(workspace)
    assert result.returncode != 0
    assert "CancelOrder" in result.stdout + result.stderr


def test_adding_a_field_is_not_breaking(workspace: Path) -> None:
    edit(
        workspace,
        "shop/orders/v1/orders.proto",
        "  string rejection_reason = 7;\n",
        "  string rejection_reason = 7;\n  // A note from the customer.\n  string note = 11;\n",
    )
    result = buf_breaking(workspace)
    assert result.returncode == 0, result.stdout + result.stderr
