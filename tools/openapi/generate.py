"""Writes openapi.json for the gateway's public services from the contracts' descriptor set.

Usage: generate.py --descriptors contracts.binpb --services public_services.txt --out openapi.json
Run by Bazel (`//gateway:openapi`); the public services are the ones the gateway transcodes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tools.openapi.contracts import Contracts
from tools.openapi.document import DocumentBuilder

TITLE = "Concord gateway"
SERVER_URL = "http://127.0.0.1:8080"


def read_services(path: Path) -> list[str]:
    """One full service name a line; blank lines and # comments ignored."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--descriptors", type=Path, required=True)
    parser.add_argument("--services", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    contracts = Contracts.load(args.descriptors)
    document = DocumentBuilder(contracts).build(read_services(args.services), TITLE, SERVER_URL)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
