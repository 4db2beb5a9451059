"""`python -m tools.catalogue [--check]`: writes the files generated from the catalogue
(runtime/catalogue.py), or with `--check` only lists the stale ones and exits 1 if any."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.catalogue.generated import expected, stale

REPO_ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.catalogue", description=__doc__)
    parser.add_argument("--check", action="store_true", help="write nothing; fail if stale")
    args = parser.parse_args(argv)
    outdated = stale(REPO_ROOT)
    if args.check:
        for path in outdated:
            print(f"stale: {path} (run `python -m tools.catalogue`)")
        return 1 if outdated else 0
    for path, content in expected(REPO_ROOT).items():
        if path in outdated:
            (REPO_ROOT / path).write_text(content)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
