"""The gateway's routes to the services, from the catalogue (runtime/catalogue.py).

`gateway/envoy.yaml.tmpl` keeps what is fixed (listeners, filters, /healthz); the routes that
name services are built here, one set per process with a public service, so adding a service to
the catalogue routes it, and gateway/README.md's route table is generated from the same list
(`python -m tools.catalogue`). Each route is written into the template as one JSON object,
which YAML reads as it is.

Every route to a service has its own rate limit buckets, sized by its kind: one per customer
and a global guard (`_limit`, docs/gateway.md "Rate limits").

Per process with a REST prefix: a write route (POST: smaller buckets, longer timeout,
retried on another instance only after a failure that proves the service never saw it: a
refused connection or stream; a write that reached an instance which then died is a 503 the
client retries with its idempotency key) and a read
route (everything else on the prefix: safe to repeat, so a refused connection or UNAVAILABLE is
retried on another instance). Per public gRPC service: a route by service name (a client's
grpc-timeout honoured up to the write timeout; methods read and write alike, so only failures
that prove the request never reached a service are retried). Internal services get no route,
and REST-only ones (the orders admin service's read-only views, runtime/catalogue.py) no gRPC
route: their annotated RPCs ride the REST routes of their process's prefix, the rest stay
internal.
Last, reflection, rewritten to the registry's public reflection (registry/public_reflection.py),
so it lists only public services; a stream, so not buffered and never retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from runtime import catalogue
from tools.runner.gateway_settings import GatewaySettings, RouteLimit, RouteLimits

REFLECTION_CLUSTER = "public_reflection"
"""The template's static cluster for reflection: the registry's port."""
REFLECTION_PATH_REGEX = r"/grpc\.reflection\.v1(alpha)?\.ServerReflection/"
"""Both versions of reflection (grpcurl asks for v1 first): their messages are the same on the
wire, and the registry serves v1alpha's."""
PUBLIC_REFLECTION_PATH = "/concord.gateway.PublicReflection/"
"""registry/public_reflection.py SERVICE_NAME; the registry serves the reflection protocol
there for the public services only."""


class RouteKind(StrEnum):
    WRITE = "writes"
    READ = "reads"
    GRPC = "grpc"
    REFLECTION = "reflection"


@dataclass(frozen=True)
class Route:
    name: str
    kind: RouteKind
    match: str
    """A path prefix; for reflection a regular expression."""
    cluster: str


def service_routes() -> list[Route]:
    """Every route that reaches a service, in the order Envoy tries them."""
    processes = catalogue.gateway_processes()
    routes: list[Route] = []
    for p in processes:
        if p.rest_prefix is not None:
            resource = p.rest_prefix.rstrip("/").rsplit("/", 1)[-1]
            routes.append(Route(f"{resource}_write", RouteKind.WRITE, p.rest_prefix, p.name))
            routes.append(Route(f"{resource}_read", RouteKind.READ, p.rest_prefix, p.name))
    for p in processes:
        for i, service in enumerate(p.grpc_routed_services):
            name = f"grpc_{p.name}" if i == 0 else f"grpc_{p.name}_{service.rsplit('.', 1)[-1]}"
            routes.append(Route(name.lower(), RouteKind.GRPC, f"/{service}/", p.name))
    routes.append(
        Route("grpc_reflection", RouteKind.REFLECTION, REFLECTION_PATH_REGEX, REFLECTION_CLUSTER)
    )
    return routes


CUSTOMER_HEADER = "x-customer-id"
"""Set by jwt_authn from the verified token's subject, after the header_mutation filter has
removed any copy the client sent (gateway/envoy.yaml.tmpl): the only customer id a bucket may
be keyed on."""
CUSTOMER_DESCRIPTOR = "customer"


def _bucket(limit: RouteLimit) -> dict[str, Any]:
    return {
        "max_tokens": limit.burst,
        "tokens_per_fill": limit.refill,
        "fill_interval": f"{limit.fill_interval_s}s",
    }


def _limit(kind: str, limits: RouteLimits, tracked_customers: int) -> dict[str, Any]:
    """A route's own buckets (each route has its own, even with equal settings): the global
    guard is the default bucket, which every request takes a token from; the descriptor with no
    value is a wildcard, a bucket per distinct customer id, checked first, so a customer over
    their limit uses up none of the guard's tokens."""
    always = {"numerator": 100, "denominator": "HUNDRED"}
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
        "stat_prefix": kind,
        "token_bucket": _bucket(limits.global_guard),
        "rate_limits": [
            {
                "actions": [
                    {
                        "request_headers": {
                            "header_name": CUSTOMER_HEADER,
                            "descriptor_key": CUSTOMER_DESCRIPTOR,
                        }
                    }
                ]
            }
        ],
        "descriptors": [
            {
                "entries": [{"key": CUSTOMER_DESCRIPTOR}],
                "token_bucket": _bucket(limits.per_customer),
            }
        ],
        "max_dynamic_descriptors": tracked_customers,
        "always_consume_default_token_bucket": True,
        "filter_enabled": {"default_value": always, "runtime_key": f"rate_limit.{kind}.enabled"},
        "filter_enforced": {"default_value": always, "runtime_key": f"rate_limit.{kind}.enforced"},
        "rate_limited_as_resource_exhausted": True,
        "response_headers_to_add": [
            {
                "header": {"key": "retry-after", "value": str(limits.retry_after_s)},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            }
        ],
    }


def _retry(retry_on: str, s: GatewaySettings) -> dict[str, Any]:
    """Retries on another instance than the one that failed."""
    return {
        "retry_on": retry_on,
        "num_retries": s.retry_attempts,
        "retry_host_predicate": [
            {
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
                },
            }
        ],
        "host_selection_retry_max_attempts": 3,
    }


def envoy_route(route: Route, s: GatewaySettings) -> dict[str, Any]:
    """The route as Envoy's RouteConfiguration reads it."""
    ratelimit = "envoy.filters.http.local_ratelimit"
    if route.kind is RouteKind.WRITE:
        return {
            "name": route.name,
            "match": {
                "prefix": route.match,
                "headers": [{"name": ":method", "string_match": {"exact": "POST"}}],
            },
            "route": {
                "cluster": route.cluster,
                "timeout": f"{s.write_timeout_s}s",
                # Only failures that prove the service never saw the request: a POST that
                # found a killed replica goes to another one instead of failing the client.
                "retry_policy": _retry("connect-failure,refused-stream", s),
            },
            "typed_per_filter_config": {ratelimit: _limit("write", s.writes, s.tracked_customers)},
        }
    if route.kind is RouteKind.READ:
        return {
            "name": route.name,
            "match": {"prefix": route.match},
            "route": {
                "cluster": route.cluster,
                "timeout": f"{s.read_timeout_s}s",
                "retry_policy": _retry("connect-failure,refused-stream,unavailable", s),
            },
            "typed_per_filter_config": {ratelimit: _limit("read", s.reads, s.tracked_customers)},
        }
    if route.kind is RouteKind.GRPC:
        return {
            "name": route.name,
            "match": {"prefix": route.match, "grpc": {}},
            "route": {
                "cluster": route.cluster,
                "timeout": f"{s.write_timeout_s}s",
                # With grpc_timeout_header_max set Envoy ignores `timeout` for gRPC, so a call
                # without grpc-timeout (buf curl, most gRPC-Web and Connect clients) would have
                # no bound at all: max_stream_duration is that bound.
                "max_stream_duration": {
                    "max_stream_duration": f"{s.write_timeout_s}s",
                    "grpc_timeout_header_max": f"{s.write_timeout_s}s",
                },
                "retry_policy": _retry("connect-failure,refused-stream", s),
            },
            "typed_per_filter_config": {ratelimit: _limit("grpc", s.grpc, s.tracked_customers)},
        }
    return {
        "name": route.name,
        "match": {"safe_regex": {"regex": f"{route.match}.*"}, "grpc": {}},
        "route": {
            "cluster": route.cluster,
            "timeout": "0s",
            "idle_timeout": f"{s.read_timeout_s}s",
            "regex_rewrite": {
                "pattern": {"regex": route.match},
                "substitution": PUBLIC_REFLECTION_PATH,
            },
        },
        "typed_per_filter_config": {
            ratelimit: _limit("grpc", s.grpc, s.tracked_customers),
            "envoy.filters.http.buffer": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute",
                "disabled": True,
            },
        },
    }
