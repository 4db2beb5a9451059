"""Every limit and timeout the gateway enforces (`GatewaySettings`), apart from the gateway
itself so the routes (routes.py) and the template's renderer (gateway.py) can both read them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RouteLimit:
    """A token bucket: `burst` requests per `fill_interval_s`, refilled all at once."""

    burst: int
    fill_interval_s: int


@dataclass(frozen=True)
class GatewaySettings:
    """Every limit and timeout the gateway enforces, with its unit in its name."""

    reads: RouteLimit = RouteLimit(burst=200, fill_interval_s=1)
    writes: RouteLimit = RouteLimit(burst=50, fill_interval_s=1)
    grpc: RouteLimit = RouteLimit(burst=200, fill_interval_s=1)
    read_timeout_s: int = 5
    write_timeout_s: int = 15
    connect_timeout_s: int = 1
    retry_attempts: int = 2
    """Retries of a request whose instance could not take it (see each route's retry_policy)."""
    request_headers_timeout_s: int = 10
    request_timeout_s: int = 60
    stream_idle_timeout_s: int = 60
    connection_idle_timeout_s: int = 300
    max_request_body_bytes: int = 1024 * 1024
    max_response_body_bytes: int = 4 * 1024 * 1024
    max_request_headers_kb: int = 32
    """Enforced by the edge filter (431 / RESOURCE_EXHAUSTED), not the codec: see below."""
    max_request_headers_count: int = 100
    codec_request_headers_ceiling_kb: int = 96
    """What the codecs accept, above `max_request_headers_kb`: an HTTP/2 codec that hits its
    own limit can only reset the stream, so the limits above are checked by a filter that can
    answer, and only requests beyond this ceiling still get a reset (docs/gateway.md)."""
    codec_request_headers_ceiling_count: int = 200
    jwt_max_lifetime_s: int = 12 * 3600
    """Longest `exp - iat` a token may have; tokens without `exp` are refused outright."""
    jwt_clock_skew_s: int = 30
    cors_allowed_origins: tuple[str, ...] = (
        "http://localhost:3000",
        "http://127.0.0.1:3000",
        "http://localhost:5173",
        "http://127.0.0.1:5173",
        "http://localhost:8000",
        "http://127.0.0.1:8000",
    )
    """Browser origins whose preflights are answered (exact match); the dev front ends' ports."""
    cors_max_age_s: int = 600
    max_heap_bytes: int = 512 * 1024 * 1024
    access_log_flush_interval_ms: int = 1000
    """How soon a request's access log line reaches the log file (Envoy's default is 10 s)."""
    max_downstream_connections: int = 1000
