"""Counts the test cases `bazel test //...` ran, from each target's JUnit XML, and prints the
closing `N passed, N failed` line of `make test` (checks included).

A target that failed without writing XML (a crash, a timeout) counts as one failure, so nothing
that went wrong can vanish from the count.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0
    skipped: int = 0


def test_targets() -> list[str]:
    out = subprocess.run(
        ["bazel", "query", "tests(//...)", "--noshow_progress"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in out.stdout.splitlines() if line.startswith("//")]


def tally_target(label: str, testlogs: Path, tally: Tally) -> None:
    package, _, name = label[2:].partition(":")
    logs = testlogs / package / name
    xml_path = logs / "test.xml"
    if not xml_path.exists():
        tally.failed += 1
        print(f"no test results for {label}", file=sys.stderr)
        return
    for case in ElementTree.parse(xml_path).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            tally.failed += 1
        elif case.find("skipped") is not None:
            tally.skipped += 1
        else:
            tally.passed += 1
    status = (logs / "test.log").read_text(errors="replace") if (logs / "test.log").exists() else ""
    if "no tests ran" in status:
        tally.failed += 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks-passed", type=int, required=True)
    parser.add_argument("--checks-failed", type=int, required=True)
    parser.add_argument("--bazel-status", type=int, required=True)
    parser.add_argument("--failed-check", action="append", default=[])
    args = parser.parse_args()

    tally = Tally(passed=args.checks_passed, failed=args.checks_failed)
    testlogs = Path("bazel-testlogs")
    for label in test_targets():
        tally_target(label, testlogs, tally)
    if args.bazel_status not in (0, 3) and tally.failed == 0:
        tally.failed += 1  # the build broke before any test could report

    for name in args.failed_check:
        print(f"failed check: {name}")
    line = f"{tally.passed} passed, {tally.failed} failed"
    if tally.skipped:
        line += f", {tally.skipped} skipped"
    print(line)
    return 1 if tally.failed or args.bazel_status != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
