#!/bin/sh
# The image's entry point: one argument names the process to run (the manifests' `args`).
# The Python processes are the catalogue's packages (runtime/catalogue.py) and the registry;
# Envoy and nats-server are the binaries of the wheels pinned in requirements.txt.
set -eu
process="${1:?usage: entrypoint.sh registry|orders|inventory|payments|paygate|gateway|nats}"
shift
case "$process" in
  registry) exec python3 -m registry "$@" ;;
  orders) exec python3 -m services.orders "$@" ;;
  inventory) exec python3 -m services.inventory "$@" ;;
  payments) exec python3 -m services.payments "$@" ;;
  paygate) exec python3 -m standins.paygate "$@" ;;
  gateway)
    # The flags of tools/runner/gateway.py's Gateway.argv; the bootstrap is the ConfigMap.
    exec envoy -c /etc/concord/gateway/envoy.yaml --disable-hot-restart --log-level warn \
      --drain-time-s 2 --file-flush-interval-msec 1000 --concurrency 1 "$@" ;;
  nats) exec nats-server -c /etc/nats/nats.conf "$@" ;;
  *) echo "entrypoint.sh: unknown process '$process'" >&2; exit 64 ;;
esac
