"""Where the wheel-shipped binaries live: the bin/ folder of the running virtualenv."""

import shutil
import sys
from pathlib import Path

KNOWN_BINARIES = ("nats-server", "envoy", "buf", "grpcurl")


class MissingBinaryError(RuntimeError):
    pass


def binary(name: str) -> Path:
    """Returns the path of a tool installed from requirements.txt (nats-server, envoy, ...).

    Looks beside the interpreter first, so Bazel tests and `make up` use the pinned versions
    whatever PATH says.
    """
    candidate = Path(sys.prefix) / "bin" / name
    if candidate.exists():
        return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise MissingBinaryError(f"{name} not found in {candidate.parent} or on PATH: run make setup")
