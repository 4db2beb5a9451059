"""`make bench`'s results: one text table on stdout, the same rows as JSON, and a PNG chart
of the ratios against their targets, under a git-ignored folder (RESULTS_DIR).

    python -m bench.report   # the last run as Markdown, for docs/performance.md"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.rows import Row, met

RESULTS_DIR = Path(".data") / "bench"
HEADERS = ("figure", "measured", "baseline", "ratio", "target", "met?")


def _verdict(row: Row) -> str:
    outcome = met(row)
    return "-" if outcome is None else ("yes" if outcome else "NO")


def table(rows: list[Row]) -> str:
    """The rows as an aligned plain-text table."""
    cells = [
        (
            r.figure,
            f"{r.value:,.3g} {r.unit}".strip(),
            f"{r.baseline:,.3g}",
            f"{r.ratio:.3g}",
            r.target or "-",
            _verdict(r),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [HEADERS, *cells]) for i in range(len(HEADERS))]
    lines = [HEADERS, tuple("-" * w for w in widths), *cells]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines
    )


def machine() -> dict[str, object]:
    """What the figures ran on: they mean little without it."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    memory_kib = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        memory_kib = int(meminfo.read_text().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
    }


def write_json(rows: list[Row], path: Path, notes: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": machine(),
        "rows": [{**asdict(r), "met": met(r)} for r in rows],
        "notes": notes,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def draw_png(rows: list[Row], path: Path) -> Path:
    """A horizontal bar per figure (its ratio), with its target as a tick; green when met."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    height = max(2.5, 0.45 * len(rows) + 1)
    figure, axes = plt.subplots(figsize=(10, height))
    labels = [r.figure for r in rows][::-1]
    ratios = [r.ratio for r in rows][::-1]
    colours = [{True: "tab:green", False: "tab:red", None: "tab:gray"}[met(r)] for r in rows][::-1]
    axes.barh(labels, ratios, color=colours)
    for index, row in enumerate(rows[::-1]):
        if row.target is not None:
            bound = float(row.target.split()[-1])
            axes.plot([bound, bound], [index - 0.4, index + 0.4], color="black", linewidth=2)
    axes.set_xscale("log")
    axes.set_xlabel("ratio (measured / baseline); black tick: target")
    axes.tick_params(axis="y", labelsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def markdown(document: dict[str, Any]) -> str:
    """A written bench.json as a Markdown table with the machine it ran on."""
    m = document["machine"]
    lines = [
        f"{m['nproc']} cores ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + " --- |" * len(HEADERS),
    ]
    for r in document["rows"]:
        verdict = {True: "yes", False: "**no**", None: "-"}[r["met"]]
        lines.append(
            f"| {r['figure']} | {r['value']:,.3g} {r['unit']} | {r['baseline']:,.3g}"
            f" | {r['ratio']:.3g} | {r['target'] or '-'} | {verdict} |"
        )
    lines += [f"\n{note}" for note in document["notes"]]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(json.loads((RESULTS_DIR / "bench.json").read_text())))
