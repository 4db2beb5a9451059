"""The files generated from the catalogue (runtime/catalogue.py) for readers that cannot import
Python: Bazel's Starlark, the OpenAPI genrule, and people reading gateway/README.md.

`expected(repo_root)` is what each file must contain, given what it holds now (the README keeps
everything outside its markers). `python -m tools.catalogue` writes them; `--check`, and
tests/unit/test_catalogue.py, fail when one differs, i.e. when someone changed the catalogue or
the routes without regenerating, or edited a generated file by hand.
"""

from __future__ import annotations

from pathlib import Path

from runtime import catalogue
from tools.runner.gateway import GatewaySettings, RouteLimits
from tools.runner.routes import Route, RouteKind, service_routes

HEADER = "Generated from runtime/catalogue.py by `python -m tools.catalogue`; do not edit."
PUBLIC_SERVICES = "gateway/public_services.txt"
GATEWAY_README = "gateway/README.md"
CATALOGUE_BZL = "tools/bazel/catalogue.bzl"
GENERATED = (PUBLIC_SERVICES, GATEWAY_README, CATALOGUE_BZL)
ROUTES_BEGIN = "<!-- routes: generated from runtime/catalogue.py by `python -m tools.catalogue` -->"
ROUTES_END = "<!-- end of generated routes -->"


def public_services_txt() -> str:
    lines = [
        f"# {HEADER}",
        "# The services clients reach through the gateway: transcoded to REST, routed for gRPC,",
        "# reflected, and described in openapi.json. Everything else stays internal.",
        *catalogue.public_services(),
    ]
    return "\n".join(lines) + "\n"


def catalogue_bzl() -> str:
    targets = "".join(f'    "{p.bazel_library}",\n' for p in catalogue.start_order())
    return (
        f'"""{HEADER}\n\n'
        "Starlark cannot import Python, so the catalogue's lists that BUILD files need are "
        'written out here."""\n\n'
        "# Every process of the shop (stand-ins included), for test targets that start the "
        "whole saga.\n"
        f"SHOP_SERVICES = [\n{targets}]\n"
    )


def _buckets(name: str, limits: RouteLimits) -> str:
    """The default sizes (docs/gateway.md says how to change them)."""
    customer, guard = limits.per_customer, limits.global_guard
    return f"{name}: {customer.refill}/s per customer, {guard.refill}/s in all"


def _route_row(route: Route, s: GatewaySettings) -> str:
    if route.kind is RouteKind.WRITE:
        match, bucket = f"`POST {route.match}...`", _buckets("writes", s.writes)
        timeout = f"{s.write_timeout_s} s"
    elif route.kind is RouteKind.READ:
        match, bucket = f"other `{route.match}...`", _buckets("reads", s.reads)
        timeout = f"{s.read_timeout_s} s"
    elif route.kind is RouteKind.GRPC:
        match, bucket = f"gRPC `{route.match}*`", _buckets("grpc", s.grpc)
        timeout = f"{s.write_timeout_s} s (or the client's `grpc-timeout`, if shorter)"
    else:
        match = "gRPC `/grpc.reflection.v1(alpha).ServerReflection/*`"
        bucket, timeout = _buckets("grpc", s.grpc), f"stream, {s.read_timeout_s} s idle"
        cluster = f"`{route.cluster}`: the registry, public services only"
        return f"| `{route.name}` | {match} | {cluster} | {bucket} | {timeout} |"
    return f"| `{route.name}` | {match} | `{route.cluster}` | {bucket} | {timeout} |"


def route_table() -> str:
    s = GatewaySettings()
    rows = [
        "| route name | match | cluster (endpoints: its live instances, from the registry) "
        "| bucket | timeout |",
        "| --- | --- | --- | --- | --- |",
        "| `health` | `GET` or `HEAD /healthz` | answered by Envoy | none | none |",
        "| `health_other_methods` | any other method on `/healthz` "
        "| 405 JSON with `allow: GET, HEAD` | none | none |",
        *(_route_row(r, s) for r in service_routes()),
        "| `preflight` | any other `OPTIONS` (browser preflights for gRPC-Web and Connect) "
        "| answered by the cors filter; otherwise 401, or 404 JSON with a token | none | none |",
        "| (none) | anything else | 404 JSON (REST) or `UNIMPLEMENTED` (gRPC) | | |",
    ]
    return "\n".join(rows)


def gateway_readme(current: str) -> str:
    """The README with the route table between its markers replaced."""
    start, end = current.find(ROUTES_BEGIN), current.find(ROUTES_END)
    if start < 0 or end < start:
        raise ValueError(f"{GATEWAY_README} lost its markers {ROUTES_BEGIN!r} / {ROUTES_END!r}")
    return current[: start + len(ROUTES_BEGIN)] + "\n" + route_table() + "\n" + current[end:]


def expected(repo_root: Path) -> dict[str, str]:
    """Each generated file's path (from the repository root) and the content it must have."""
    return {
        PUBLIC_SERVICES: public_services_txt(),
        GATEWAY_README: gateway_readme((repo_root / GATEWAY_README).read_text()),
        CATALOGUE_BZL: catalogue_bzl(),
    }


def stale(repo_root: Path) -> list[str]:
    """The generated files whose content is not what the catalogue gives."""
    return [
        path
        for path, content in expected(repo_root).items()
        if not (repo_root / path).exists() or (repo_root / path).read_text() != content
    ]
