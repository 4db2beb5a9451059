"""One benchmark figure as a row of `make bench`'s table: what was measured, the baseline it
is compared with on the same machine in the same run, their ratio, and the issue's target.

Each bench module exposes `rows() -> list[Row]`; bench/__main__.py collects them, prints one
table, writes it as JSON and draws it (bench/report.py). A ratio, not an absolute figure, is
what is compared with a target: the machine is shared, so only things measured side by side
are comparable.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

QUICK_ENV = "BENCH_QUICK"


@dataclass(frozen=True)
class Row:
    """`ratio` is value / baseline unless the module says otherwise in `figure`; `target` is
    the issue's bound on the ratio as text (">= 0.05", "<= 1.4"), None when there is none."""

    figure: str
    value: float
    unit: str
    baseline: float
    ratio: float
    target: str | None


def met(row: Row) -> bool | None:
    """Whether the row's ratio meets its target; None when it has none."""
    if row.target is None:
        return None
    op, _, bound = row.target.strip().partition(" ")
    limit = float(bound)
    checks = {
        ">=": row.ratio >= limit,
        "<=": row.ratio <= limit,
        ">": row.ratio > limit,
        "<": row.ratio < limit,
    }
    if op not in checks:
        raise ValueError(f"target {row.target!r} of {row.figure!r} is not '<op> <number>'")
    return checks[op]


def quick() -> bool:
    """`BENCH_QUICK=1`: a short smoke run of every figure (seconds, not minutes); its ratios
    are noisier and say only that the bench works."""
    return os.environ.get(QUICK_ENV, "") not in ("", "0", "false")


def scaled(full: int, quick_value: int) -> int:
    """A count (orders, requests, seconds) for the mode this run is in."""
    return quick_value if quick() else full


def print_rows(rows: Iterable[Row]) -> None:
    """One line a row, for a module run on its own (`python -m bench.<module>`)."""
    for row in rows:
        print(
            f"{row.figure}: {row.value:,.4g} {row.unit} against {row.baseline:,.4g}:"
            f" ratio {row.ratio:.2f}"
        )
