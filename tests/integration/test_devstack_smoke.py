"""`make up`'s smoke check (tools/devstack/smoke.py) checks every component by name: with
PayGate killed, it says which one is down and the stack is NOT READY, however many others
answer."""

from __future__ import annotations

import pytest

from tests.support.processes import ServiceRunner
from tests.support.repo import REPO_ROOT
from tools.devstack.smoke import Check, component_checks, smoke


def failed(checks: list[Check]) -> set[str]:
    return {check.what for check in checks if not check.ok}


def test_smoke_names_each_component_that_is_down(
    services: ServiceRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    services.start("inventory")  # and the registry it needs
    paygate = services.start("paygate")
    up = failed(component_checks(services.stack))
    assert "paygate" not in up and "inventory" not in up and "registry" not in up
    assert "nats" not in up and "registry lists inventory" not in up
    assert {"payments", "orders", "registry lists payments", "envoy"} <= up

    paygate.kill()
    assert "paygate" in failed(component_checks(services.stack))
    assert not smoke(services.stack, REPO_ROOT, settle_s=0)
    printed = capsys.readouterr().out
    assert "check: paygate -> FAILED" in printed
    assert "check: inventory -> ok" in printed
    assert "NOT READY" in printed
