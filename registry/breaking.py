"""buf's breaking-change check between two descriptor sets, run as a subprocess.

Both sets are written as binary images to a temporary folder and compared with the FILE rules,
the ones `make test` applies to the repository. google/protobuf is ignored: the well-known
types differ between protoc and buf releases and are not Concord's contracts.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path

from runtime.errors import DependencyUnavailableError, FieldViolation, InvalidArgumentError

BUF_CONFIG = json.dumps(
    {"version": "v2", "breaking": {"use": ["FILE"], "ignore": ["google/protobuf"]}}
)
BUF_FOUND_BREAKING = 100
"""buf's exit code when the check ran and found breaking changes."""


class BreakingCheck:
    def __init__(self, buf_path: str, timeout_s: float, cache_dir: Path) -> None:
        self._buf = buf_path
        self._timeout_s = timeout_s
        self._cache_dir = cache_dir

    async def violations(self, candidate: bytes, against: bytes) -> list[str]:
        """buf's findings, one a line; empty when `candidate` breaks nothing in `against`."""
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
                "text",
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
            return lines
        raise InvalidArgumentError(
            [
                FieldViolation(
                    "descriptor_set", f"buf could not read it: {err.decode().strip()[:500]}"
                )
            ]
        )
