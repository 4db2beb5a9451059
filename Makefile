# Concord's front door. `make up` starts the system, `make test` runs every check and test.
# Both install what is missing first (tools/setup.sh) and are safe to run again.
VENV ?= $(if $(CONCORD_VENV),$(CONCORD_VENV),$(CURDIR)/.venv)
PYTHON := $(VENV)/bin/python3
export PATH := $(VENV)/bin:$(PATH)
export CONCORD_VENV := $(VENV)

.PHONY: setup build up up-cluster down clean status test check lint fmt bench

setup:
	@bash tools/setup.sh

build: setup
	@bazel build --noshow_progress --ui_event_filters=-info //...

up: build
	@$(PYTHON) -m tools.devstack up

# The scaled topology on this machine (docs/deploy.md): PostgreSQL, three clustered NATS nodes,
# two instances of each service; the same ports for the gateway, so the README walk works.
up-cluster: build
	@$(PYTHON) -m tools.devstack up --cluster

# Stops whichever topology runs.
down:
	@$(PYTHON) -m tools.devstack down

# Stops everything and deletes all local state (.data/: databases, JetStream, logs).
clean: down
	@rm -rf .data

status:
	@$(PYTHON) -m tools.devstack status

test: setup
	@bash tools/test.sh

fmt: setup
	@buf format -w
	@ruff format .
	@ruff check --fix .

# Benchmarks print ratios measured in one run (no pass/fail): breaker fast-fail, order latency,
# order throughput with metrics off and on.
# Every figure in one run, one table, .data/bench/bench.{json,png} (docs/performance.md).
# BENCH_QUICK=1: a smoke run; BENCH_ONLY=gateway_cost,soak: some modules; BENCH_SOAK_S: soak length.
bench: build
	@PYTHONPATH=$(CURDIR):$(CURDIR)/bazel-bin/proto $(PYTHON) -m bench
