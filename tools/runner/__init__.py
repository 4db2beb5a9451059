"""Starts and stops Concord's processes on one machine: the same code behind `make up` (through
the dev CLI, tools/devstack) and behind the tests' fixtures (tests/support)."""
