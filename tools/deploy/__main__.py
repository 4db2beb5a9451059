"""`python -m tools.deploy [--check]`: writes the Kubernetes files generated from the code
(deploy/base/gateway-bootstrap.yaml, the Envoy bootstrap), or with `--check` only says whether
they are stale and exits 1 if so. Needs `make build` first (the descriptor set, openapi.json)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.deploy.bootstrap import BOOTSTRAP_PATH, configmap

REPO_ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.deploy", description=__doc__)
    parser.add_argument("--check", action="store_true", help="write nothing; fail if stale")
    args = parser.parse_args(argv)
    path = REPO_ROOT / BOOTSTRAP_PATH
    expected = configmap(REPO_ROOT)
    current = path.read_text() if path.exists() else None
    if args.check:
        if current != expected:
            print(f"stale: {BOOTSTRAP_PATH} (run `python -m tools.deploy`)")
            return 1
        return 0
    if current != expected:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(expected)
        print(f"wrote {BOOTSTRAP_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
