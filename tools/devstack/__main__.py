"""`python -m tools.devstack`: the dev CLI. The generated stubs come from Bazel's output."""

import sys
from pathlib import Path

_stubs = Path(__file__).resolve().parents[2] / "bazel-bin" / "proto"
if _stubs.is_dir() and str(_stubs) not in sys.path:
    sys.path.append(str(_stubs))

from tools.devstack.cli import main  # noqa: E402

sys.exit(main())
