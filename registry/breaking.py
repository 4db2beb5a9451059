"""buf's breaking-change check between two descriptor sets, run as a subprocess.

Both sets are written as binary images to a temporary folder and compared once with the WIRE
and WIRE_JSON rules together, the gRPC and REST channels' (registry/compatibility.py sorts the
findings by rule). google/protobuf is ignored: the well-known types differ between protoc and
buf releases and are not Concord's contracts.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.errors import DependencyUnavailableError, FieldViolation, InvalidArgumentError

BUF_CONFIG = json.dumps(
    {"version": "v2", "breaking": {"use": ["WIRE", "WIRE_JSON"], "ignore": ["google/protobuf"]}}
)
BUF_FOUND_BREAKING = 100
"""buf's exit code when the check ran and found breaking changes."""


@dataclass(frozen=True)
class BufFinding:
    """One line of `buf breaking --error-format json`."""

    path: str
    line: int
    rule: str
    message: str


class BreakingCheck:
    def __init__(self, buf_path: str, timeout_s: float, cache_dir: Path) -> None:
        self._buf = buf_path
        self._timeout_s = timeout_s
        self._cache_dir = cache_dir

    async def findings(self, candidate: bytes, against: bytes) -> list[BufFinding]:
        """buf's findings; empty when `candidate` breaks nothing in `against`."""
        with tempfile.TemporaryDirectory(prefix="concord-breaking-") as tmp:
            folder = Path(tmp)
            (folder / "candidate.binpb").write_bytes(candidate)
            (folder / "against.binpb").write_bytes(against)
            process = await asyncio.create_subprocess_exec(
                self._buf,
                "breaking",
                "candidate.binpb",
                "--against",
                "against.binpb",
                "--config",
                BUF_CONFIG,
                "--error-format",
                "json",
                cwd=folder,
                env={**os.environ, "BUF_CACHE_DIR": str(self._cache_dir)},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                out, err = await asyncio.wait_for(process.communicate(), self._timeout_s)
            except BaseException as error:  # a timeout, or the caller gave up: no orphan buf
                process.kill()
                await process.wait()
                if isinstance(error, TimeoutError):
                    raise DependencyUnavailableError(
                        "buf", f"buf breaking did not finish within {self._timeout_s:g}s"
                    ) from error
                raise
        lines = [line for line in out.decode().splitlines() if line.strip()]
        if process.returncode == 0:
            return []
        if process.returncode == BUF_FOUND_BREAKING and lines:
            return [_finding(json.loads(line)) for line in lines]
        raise InvalidArgumentError(
            [
                FieldViolation(
                    "descriptor_set",
                    f"buf could not read it (exit status {process.returncode}): "
                    f"{err.decode().strip()[:500]}",
                )
            ]
        )


def _finding(line: dict[str, Any]) -> BufFinding:
    return BufFinding(
        path=str(line.get("path", "")),
        line=int(line.get("start_line", 0)),
        rule=str(line.get("type", "")),
        message=str(line.get("message", "")),
    )
