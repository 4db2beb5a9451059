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


def built(relative: str) -> Path:
    """A Bazel output: in runfiles under `bazel test`, in bazel-bin/ under plain pytest."""
    for candidate in (REPO_ROOT / relative, REPO_ROOT / "bazel-bin" / relative):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{relative}: run `make build` or add it to the target's data")
