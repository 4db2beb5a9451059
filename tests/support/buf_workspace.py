"""A throwaway copy of the buf workspace (proto/, the google/api protos, buf.yaml), for tests
that edit contracts without touching the repository."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.repo import repo_path


def copy_buf_workspace(root: Path) -> Path:
    shutil.copytree(repo_path("proto"), root / "proto", ignore=shutil.ignore_patterns("BUILD*"))
    shutil.copytree(
        repo_path("third_party/googleapis/google"), root / "third_party/googleapis/google"
    )
    shutil.copy(repo_path("buf.yaml"), root / "buf.yaml")
    return root
