"""Paths into the source tree, the same under `bazel test` (runfiles) and plain pytest."""

from pathlib import Path

REPO_ROOT = Path(__file__).absolute().parents[2]


def repo_path(relative: str) -> Path:
    """A file of the repository; under Bazel it must be in the test target's data."""
    path = REPO_ROOT / relative
    if not path.exists():
        raise FileNotFoundError(
            f"{relative} is not in {REPO_ROOT} (missing from the target's data?)"
        )
    return path
