"""The gateway's rate limits from the environment and a limits file (tools/runner/gateway_limits.py),
and how the routes carry them to Envoy (tools/runner/routes.py). Envoy enforcing them is
tests/e2e/test_gateway_rate_limits.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.repo import REPO_ROOT
from tools.runner.gateway import gateway_component
from tools.runner.gateway_limits import GatewayLimitsError, settings_from_environment
from tools.runner.gateway_settings import GatewaySettings, RouteLimit
from tools.runner.routes import RouteKind, envoy_route, service_routes
from tools.runner.topology import Topology

RATE_LIMIT_FILTER = "envoy.filters.http.local_ratelimit"


def test_without_configuration_the_defaults_hold() -> None:
    assert settings_from_environment({}) == GatewaySettings()


def test_defaults_give_each_customer_a_share_far_below_the_global_guard() -> None:
    s = GatewaySettings()
    assert s.writes.per_customer == RouteLimit.per_second(20)
    assert s.reads.per_customer == RouteLimit.per_second(100)
    for limits in (s.reads, s.writes, s.grpc):
        assert limits.global_guard.refill >= 20 * limits.per_customer.refill


def test_variables_set_a_customers_and_the_global_buckets() -> None:
    s = settings_from_environment(
        {
            "CONCORD_GATEWAY_CUSTOMER_WRITES_PER_S": "5",
            "CONCORD_GATEWAY_CUSTOMER_WRITES_BURST": "8",
            "CONCORD_GATEWAY_GLOBAL_WRITES_PER_S": "900",
            "CONCORD_GATEWAY_TRACKED_CUSTOMERS": "50",
        }
    )
    assert s.writes.per_customer == RouteLimit(burst=8, fill_interval_s=1, tokens_per_fill=5)
    assert s.writes.global_guard == RouteLimit.per_second(900, burst=1800)
    assert s.reads == GatewaySettings().reads
    assert s.tracked_customers == 50


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_a_limits_file_sets_them_and_variables_win_over_it(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"limits{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({"customer": {"reads": {"per_s": 7}}, "tracked_customers": 9}))
    else:
        path.write_text("tracked_customers = 9\n[customer.reads]\nper_s = 7\n")

    s = settings_from_environment(
        {"CONCORD_GATEWAY_LIMITS_FILE": str(path), "CONCORD_GATEWAY_TRACKED_CUSTOMERS": "11"}
    )

    assert s.reads.per_customer == RouteLimit.per_second(7, burst=14)
    assert s.tracked_customers == 11


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"CONCORD_GATEWAY_CUSTOMER_WRITES_PER_S": "fast"},
            "CONCORD_GATEWAY_CUSTOMER_WRITES_PER_S='fast' is not a whole number",
        ),
        (
            {"CONCORD_GATEWAY_GLOBAL_READS_BURST": "0"},
            "CONCORD_GATEWAY_GLOBAL_READS_BURST='0' is not a whole number of at least 1",
        ),
        (
            {"CONCORD_GATEWAY_CUSTOMER_GRPC_PER_S": "2.5"},
            "CONCORD_GATEWAY_CUSTOMER_GRPC_PER_S='2.5'",
        ),
        (
            {
                "CONCORD_GATEWAY_CUSTOMER_WRITES_PER_S": "20",
                "CONCORD_GATEWAY_CUSTOMER_WRITES_BURST": "10",
            },
            "CONCORD_GATEWAY_CUSTOMER_WRITES_BURST='10': the customer writes burst (10) is"
            " below its rate (20 a second)",
        ),
        (
            {"CONCORD_GATEWAY_CUSTOMER_WRITE_PER_S": "20"},
            "unknown rate limit variable CONCORD_GATEWAY_CUSTOMER_WRITE_PER_S='20'",
        ),
        (
            {"CONCORD_GATEWAY_LIMITS_FILE": "/nonexistent/limits.toml"},
            "CONCORD_GATEWAY_LIMITS_FILE='/nonexistent/limits.toml': No such file",
        ),
    ],
)
def test_bad_variables_fail_naming_the_variable_and_its_value(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(GatewayLimitsError) as raised:
        settings_from_environment(environ)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"customer": {"writes": {"per_sec": 5}}}', "customer.writes.per_sec=5: expected per_s"),
        ('{"customers": {}}', "customers={}: expected tracked_customers or a table"),
        ('{"global": {"orders": {}}}', "global.orders={}: expected a table reads, writes"),
        ('{"global": {"reads": {"per_s": -3}}}', "global.reads.per_s=-3 is not a whole number"),
        ('{"global": {"reads": {"per_s": true}}}', "global.reads.per_s=True is not a whole"),
        ("[1, 2]", "not a table of limits"),
        ("{", "Expecting property name"),
    ],
)
def test_a_bad_limits_file_fails_naming_the_file_and_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "limits.json"
    path.write_text(text)
    with pytest.raises(GatewayLimitsError) as raised:
        settings_from_environment({"CONCORD_GATEWAY_LIMITS_FILE": str(path)})
    assert str(path) in str(raised.value)
    assert message in str(raised.value)


def test_every_route_to_a_service_has_a_bucket_per_verified_customer_and_a_global_guard() -> None:
    s = settings_from_environment({"CONCORD_GATEWAY_CUSTOMER_GRPC_PER_S": "3"})
    by_kind = {
        RouteKind.WRITE: s.writes,
        RouteKind.READ: s.reads,
        RouteKind.GRPC: s.grpc,
        RouteKind.REFLECTION: s.grpc,
    }
    for route in service_routes():
        limits = by_kind[route.kind]
        config = envoy_route(route, s)["typed_per_filter_config"][RATE_LIMIT_FILTER]

        guard, customer = limits.global_guard, limits.per_customer
        assert config["token_bucket"]["max_tokens"] == guard.burst
        assert config["rate_limits"] == [
            {
                "actions": [
                    {
                        "request_headers": {
                            "header_name": "x-customer-id",
                            "descriptor_key": "customer",
                        }
                    }
                ]
            }
        ]
        # No value: one bucket per distinct customer id.
        assert config["descriptors"] == [
            {
                "entries": [{"key": "customer"}],
                "token_bucket": {
                    "max_tokens": customer.burst,
                    "tokens_per_fill": customer.refill,
                    "fill_interval": f"{customer.fill_interval_s}s",
                },
            }
        ]
        assert config["max_dynamic_descriptors"] == s.tracked_customers
    assert s.grpc.per_customer == RouteLimit.per_second(3)


def test_make_up_reads_the_limits_when_it_renders_envoys_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before Envoy starts, not when the stack is listed: `make down` and `make status` work
    whatever the environment holds."""
    monkeypatch.setenv("CONCORD_GATEWAY_GLOBAL_WRITES_PER_S", "lots")
    envoy = gateway_component(Topology.on_free_ports(tmp_path), REPO_ROOT)

    assert envoy.prepare is not None
    with pytest.raises(GatewayLimitsError, match="CONCORD_GATEWAY_GLOBAL_WRITES_PER_S='lots'"):
        envoy.prepare()


def test_worker_threads_and_trace_sampling_come_from_the_environment() -> None:
    s = settings_from_environment(
        {"CONCORD_GATEWAY_WORKER_THREADS": "2", "CONCORD_GATEWAY_TRACE_SAMPLING_PERCENT": "12.5"}
    )
    assert (s.worker_threads, s.trace_sampling_percent) == (2, 12.5)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CONCORD_GATEWAY_WORKER_THREADS", "0"),
        ("CONCORD_GATEWAY_TRACE_SAMPLING_PERCENT", "101"),
        ("CONCORD_GATEWAY_TRACE_SAMPLING_PERCENT", "all"),
    ],
)
def test_a_bad_worker_count_or_sampling_names_itself(name: str, value: str) -> None:
    with pytest.raises(GatewayLimitsError, match=name):
        settings_from_environment({name: value})
