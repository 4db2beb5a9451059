#!/usr/bin/env bash
# Generates the client's code from what a Concord registry serves, never from proto/:
#   1. the published descriptor set, fetched from the registry (`devstack contracts get`);
#   2. messages and service descriptors from it (buf generate, protoc-gen-es from node_modules);
#   3. REST types from the gateway's OpenAPI document (openapi-typescript).
# Everything lands in src/gen/ (ignored by git), beside this script.
#
#   ./generate.sh [--registry HOST:PORT] [--version N] [--openapi FILE]
#
# Defaults: the registry of `make up` (127.0.0.1:50050), the latest version (0) and the
# document `bazel build //gateway:openapi` writes. CONCORD_ROOT names the repository whose dev
# CLI fetches the contracts (default: two folders up); CONCORD_PYTHON its interpreter.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${CONCORD_ROOT:-$(cd "$HERE/../.." && pwd)}"
PYTHON="${CONCORD_PYTHON:-${CONCORD_VENV:-$ROOT/.venv}/bin/python3}"
BUF="${BUF:-$(dirname "$PYTHON")/buf}"

registry="127.0.0.1:${CONCORD_REGISTRY_PORT:-50050}"
version=0
openapi="$ROOT/bazel-bin/gateway/openapi.json"
while [ $# -gt 0 ]; do
  case "$1" in
    --registry) registry="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    --openapi) openapi="$2"; shift 2 ;;
    *) echo "generate.sh: unknown argument $1 (see the top of the script)" >&2; exit 2 ;;
  esac
done

[ -x "$HERE/node_modules/.bin/protoc-gen-es" ] ||
  { echo "generate.sh: no node_modules in $HERE: run tools/setup.sh (npm ci)" >&2; exit 1; }
[ -f "$openapi" ] ||
  { echo "generate.sh: no OpenAPI document at $openapi: bazel build //gateway:openapi" >&2; exit 1; }

gen="$HERE/src/gen"
rm -rf "$gen"
mkdir -p "$gen"
(cd "$ROOT" && "$PYTHON" -m tools.devstack contracts --registry "$registry" \
  get --version "$version" --out "$gen/contracts.binpb")
cd "$HERE"
BUF_CACHE_DIR="${BUF_CACHE_DIR:-$gen/.buf-cache}" "$BUF" generate "$gen/contracts.binpb" --template buf.gen.yaml
node_modules/.bin/openapi-typescript "$openapi" --output "$gen/openapi.ts" --silent
echo "generated $(find "$gen" -name '*.ts' | wc -l) files in $gen from registry $registry"
