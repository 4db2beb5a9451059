"""File-by-file differences between two versions' sources, as unified diffs."""

from __future__ import annotations

import difflib
import enum
from dataclasses import dataclass


class ChangeKind(enum.Enum):
    ADDED = "ADDED"
    REMOVED = "REMOVED"
    MODIFIED = "MODIFIED"


@dataclass(frozen=True)
class FileChange:
    path: str
    kind: ChangeKind
    unified_diff: str


def diff_sources(
    old: dict[str, str], new: dict[str, str], old_tag: str, new_tag: str
) -> list[FileChange]:
    changes = []
    for path in sorted(old.keys() | new.keys()):
        before, after = old.get(path), new.get(path)
        if before == after:
            continue
        kind = (
            ChangeKind.ADDED
            if before is None
            else ChangeKind.REMOVED
            if after is None
            else ChangeKind.MODIFIED
        )
        diff = difflib.unified_diff(
            (before or "").splitlines(keepends=True),
            (after or "").splitlines(keepends=True),
            fromfile=f"{old_tag}/{path}",
            tofile=f"{new_tag}/{path}",
        )
        changes.append(FileChange(path, kind, "".join(diff)))
    return changes
