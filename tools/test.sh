#!/usr/bin/env bash
# Every check and test suite, in order: contracts (buf lint, format, breaking), ruff, mypy,
# then `bazel test //...`. Each step prints its name and number when it starts and its result
# with the seconds it took (and the total so far) when it ends. Ends with a plain
# `N passed, N failed` line counting checks and test cases; exits non-zero when anything failed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${CONCORD_VENV:-$ROOT/.venv}"
export PATH="$VENV/bin:$PATH" CONCORD_VENV="$VENV"
export BUF_CACHE_DIR="${BUF_CACHE_DIR:-$ROOT/.data/cache/buf}"

checks_passed=0
checks_failed=0
failed_names=()
STEPS=10
step_number=0
TEST_START=$SECONDS

# `== [n/STEPS] name`, then `-- name: ok|FAILED in Ns (total Ns)`.
announce() {
  step_number=$((step_number + 1))
  printf '== [%d/%d] %s\n' "$step_number" "$STEPS" "$1"
}
finished() {
  printf -- '-- %s: %s in %ds (total %ds)\n' "$1" "$2" "$(($SECONDS - $3))" "$((SECONDS - TEST_START))"
}

check() {
  local name="$1" began=$SECONDS
  shift
  announce "$name"
  if "$@"; then
    checks_passed=$((checks_passed + 1))
    finished "$name" ok "$began"
  else
    checks_failed=$((checks_failed + 1))
    failed_names+=("$name")
    printf 'FAILED: %s\n' "$name"
    finished "$name" FAILED "$began"
  fi
}

# The probe target must fail analysis because orders' library is not visible to inventory.
boundary_refused() {
  local out
  if out=$(bazel build --nobuild --noshow_progress //services/inventory:boundary_probe 2>&1); then
    echo "//services/inventory:boundary_probe built: service boundaries are not enforced"
    return 1
  fi
  grep -q "is not visible from target" <<<"$out" || { echo "$out"; return 1; }
}

check "buf lint" buf lint
check "buf format" buf format --diff --exit-code
check "buf breaking (against contracts/published.json)" \
  buf breaking proto --against contracts/published.json
check "ruff check" ruff check --quiet .
check "ruff format" ruff format --check --quiet .
check "bazel build //..." bazel build --noshow_progress //...
check "bazel visibility stops inventory depending on orders" boundary_refused
check "import boundaries (lint-imports)" env PYTHONPATH="$ROOT:$ROOT/bazel-bin/proto" lint-imports --no-cache
check "mypy" mypy --no-error-summary runtime services standins registry tools tests bench
announce "bazel test //..."
tests_began=$SECONDS
bazel test --noshow_progress //... 2>&1 | grep -v 'linux-sandbox'
bazel_status=${PIPESTATUS[0]}
finished "bazel test //..." "$([ "$bazel_status" -eq 0 ] && echo ok || echo FAILED)" "$tests_began"

"$VENV/bin/python3" -m tools.testsummary \
  --checks-passed "$checks_passed" --checks-failed "$checks_failed" \
  --bazel-status "$bazel_status" "${failed_names[@]/#/--failed-check=}"
