"""Entry point of every Concord py_test: runs pytest on the files the target names.

Bazel passes the test files as arguments; JUnit XML goes where Bazel asks (XML_OUTPUT_FILE), so
`make test` can count test cases across targets, and pytest's temporary folders live in the
test's own TEST_TMPDIR, which Bazel removes afterwards.
"""

import os
import sys

import pytest


def main() -> int:
    args = ["-p", "no:cacheprovider", "-ra", "--rootdir", os.getcwd()]
    xml_path = os.environ.get("XML_OUTPUT_FILE")
    if xml_path:
        args += ["--junitxml", xml_path, "-o", "junit_family=xunit2"]
    tmp = os.environ.get("TEST_TMPDIR")
    if tmp:
        args += ["--basetemp", os.path.join(tmp, "pytest")]
    return pytest.main(args + sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
