"""The gateway's rate limits from configuration: a file, then environment variables over it.

Operators size the shop's limits without touching code: `CONCORD_GATEWAY_LIMITS_FILE` names a
JSON or TOML file (by its suffix) and `CONCORD_GATEWAY_<SCOPE>_<KIND>_PER_S` / `_BURST`
override single values, where SCOPE is CUSTOMER or GLOBAL and KIND is READS, WRITES or GRPC
(docs/gateway.md "Rate limits"). A bucket given a rate and no burst holds BURST_SECONDS of
it. Every bad value, unknown key or misspelt variable is an error naming it and its value:
a typo silently leaving the default in force would look like a limit that does not work.
Two cost knobs come from the environment here too: `CONCORD_GATEWAY_WORKER_THREADS` and
`CONCORD_GATEWAY_TRACE_SAMPLING_PERCENT` (docs/performance.md).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from tools.runner.gateway_settings import (
    BURST_SECONDS,
    GatewaySettings,
    RouteLimit,
    RouteLimits,
)

ENV_PREFIX = "CONCORD_GATEWAY_"
LIMITS_FILE_ENV = "CONCORD_GATEWAY_LIMITS_FILE"
TRACKED_CUSTOMERS_ENV = "CONCORD_GATEWAY_TRACKED_CUSTOMERS"
WORKER_THREADS_ENV = "CONCORD_GATEWAY_WORKER_THREADS"
TRACE_SAMPLING_ENV = "CONCORD_GATEWAY_TRACE_SAMPLING_PERCENT"
"""The gateway's cost knobs (docs/performance.md), from the environment only."""
KINDS = ("reads", "writes", "grpc")
SCOPES = ("customer", "global")
"""RouteLimits.per_customer and .global_guard, as variables and files name them."""
FIELDS = ("per_s", "burst")


class GatewayLimitsError(ValueError):
    """A rate limit setting the gateway cannot use; the message names it and its value."""


def _count(source: str, raw: object) -> int:
    """A whole number of requests (or customers), at least 1."""
    text = str(raw).strip()
    if isinstance(raw, bool) or not text.isdigit() or int(text) < 1:
        raise GatewayLimitsError(f"{source}={raw!r} is not a whole number of at least 1")
    return int(text)


def _percent(source: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 100.0:
        raise GatewayLimitsError(f"{source}={raw!r} is not a percentage from 0 to 100")
    return value


def _env_name(scope: str, kind: str, field: str) -> str:
    return f"{ENV_PREFIX}{scope}_{kind}_{field}".upper()


def _known_env_names() -> set[str]:
    names = {_env_name(s, k, f) for s in SCOPES for k in KINDS for f in FIELDS}
    return names | {LIMITS_FILE_ENV, TRACKED_CUSTOMERS_ENV}


def _check_env_names(environ: Mapping[str, str]) -> None:
    prefixes = tuple(f"{ENV_PREFIX}{s.upper()}_" for s in SCOPES)
    unknown = sorted(n for n in environ if n.startswith(prefixes) and n not in _known_env_names())
    if unknown:
        raise GatewayLimitsError(
            f"unknown rate limit variable {unknown[0]}={environ[unknown[0]]!r}: expected"
            f" {ENV_PREFIX}<CUSTOMER|GLOBAL>_<READS|WRITES|GRPC>_<PER_S|BURST>"
        )


def _read_file(path: Path) -> dict[str, object]:
    try:
        text = path.read_text()
    except OSError as error:
        raise GatewayLimitsError(f"{LIMITS_FILE_ENV}={str(path)!r}: {error.strerror}") from error
    try:
        if path.suffix == ".json":
            data: object = json.loads(text)
        elif path.suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise GatewayLimitsError(
                f"{LIMITS_FILE_ENV}={str(path)!r}: the name must end in .json or .toml"
            )
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise GatewayLimitsError(f"{LIMITS_FILE_ENV}={str(path)!r}: {error}") from error
    if not isinstance(data, dict):
        raise GatewayLimitsError(f"{LIMITS_FILE_ENV}={str(path)!r}: not a table of limits")
    return data


def _file_values(path: Path) -> dict[str, tuple[str, object]]:
    """The file's values by their variable's name, each with where it came from
    (`limits.toml: customer.writes.per_s`), so errors name the file and the key."""
    data = _read_file(path)
    values: dict[str, tuple[str, object]] = {}
    for scope, kinds in data.items():
        where = f"{path}: {scope}"
        if scope == "tracked_customers":
            values[TRACKED_CUSTOMERS_ENV] = (where, kinds)
            continue
        if scope not in SCOPES or not isinstance(kinds, dict):
            raise GatewayLimitsError(
                f"{where}={kinds!r}: expected tracked_customers or a table customer or global"
            )
        for kind, fields in kinds.items():
            if kind not in KINDS or not isinstance(fields, dict):
                raise GatewayLimitsError(
                    f"{where}.{kind}={fields!r}: expected a table reads, writes or grpc"
                )
            for field, raw in fields.items():
                if field not in FIELDS:
                    raise GatewayLimitsError(
                        f"{where}.{kind}.{field}={raw!r}: expected per_s or burst"
                    )
                values[_env_name(scope, kind, field)] = (f"{where}.{kind}.{field}", raw)
    return values


def _bucket(
    values: Mapping[str, tuple[str, object]], scope: str, kind: str, default: RouteLimit
) -> RouteLimit:
    per_s_name, burst_name = (_env_name(scope, kind, f) for f in FIELDS)
    if per_s_name not in values and burst_name not in values:
        return default
    per_s = _count(*values[per_s_name]) if per_s_name in values else default.refill
    if burst_name in values:
        burst = _count(*values[burst_name])
    elif per_s_name in values:
        burst = per_s * BURST_SECONDS
    else:
        burst = default.burst
    if burst < per_s:
        where, raw = values.get(burst_name) or values[per_s_name]
        raise GatewayLimitsError(
            f"{where}={raw!r}: the {scope} {kind} burst ({burst}) is below its rate ({per_s}"
            " a second); a bucket smaller than a second's tokens would cap the rate at it"
        )
    return RouteLimit.per_second(per_s, burst)


def settings_from_environment(
    environ: Mapping[str, str] | None = None, base: GatewaySettings | None = None
) -> GatewaySettings:
    """`base` (the defaults) with the rate limits the file and the environment set, and the
    worker threads and trace sampling the environment sets."""
    env = os.environ if environ is None else environ
    settings = base or GatewaySettings()
    _check_env_names(env)
    values: dict[str, tuple[str, object]] = {}
    if env.get(LIMITS_FILE_ENV):
        values.update(_file_values(Path(env[LIMITS_FILE_ENV])))
    values.update({n: (n, env[n]) for n in _known_env_names() - {LIMITS_FILE_ENV} if n in env})

    def kind_limits(kind: str, current: RouteLimits) -> RouteLimits:
        return RouteLimits(
            per_customer=_bucket(values, "customer", kind, current.per_customer),
            global_guard=_bucket(values, "global", kind, current.global_guard),
        )

    tracked = values.get(TRACKED_CUSTOMERS_ENV)
    if WORKER_THREADS_ENV in env:
        settings = replace(
            settings, worker_threads=_count(WORKER_THREADS_ENV, env[WORKER_THREADS_ENV])
        )
    if TRACE_SAMPLING_ENV in env:
        settings = replace(
            settings,
            trace_sampling_percent=_percent(TRACE_SAMPLING_ENV, env[TRACE_SAMPLING_ENV]),
        )
    return replace(
        settings,
        reads=kind_limits("reads", settings.reads),
        writes=kind_limits("writes", settings.writes),
        grpc=kind_limits("grpc", settings.grpc),
        tracked_customers=settings.tracked_customers if tracked is None else _count(*tracked),
    )
