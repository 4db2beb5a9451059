"""Every limit and timeout the gateway enforces (`GatewaySettings`), apart from the gateway
itself so the routes (routes.py) and the template's renderer (gateway.py) can both read them.
The rate limits can also come from the environment or a file (gateway_limits.py)."""

from __future__ import annotations

from dataclasses import dataclass

BURST_SECONDS = 2
"""A bucket's default size, in seconds of its rate: a client may send two seconds' worth at
once, then its rate."""


@dataclass(frozen=True)
class RouteLimit:
    """A token bucket: holds at most `burst` requests and gets `tokens_per_fill` of them back
    every `fill_interval_s` (the whole bucket when unset)."""

    burst: int
    fill_interval_s: int = 1
    tokens_per_fill: int | None = None

    def __post_init__(self) -> None:
        if self.burst < 1 or self.fill_interval_s < 1:
            raise ValueError(f"{self}: burst and fill_interval_s must be at least 1")
        if self.tokens_per_fill is not None and not 1 <= self.tokens_per_fill <= self.burst:
            raise ValueError(f"{self}: tokens_per_fill must be between 1 and burst")

    @classmethod
    def per_second(cls, rate: int, burst: int | None = None) -> RouteLimit:
        """`rate` requests a second, up to `burst` at once (BURST_SECONDS of the rate when
        unset)."""
        return cls(burst=rate * BURST_SECONDS if burst is None else burst, tokens_per_fill=rate)

    @property
    def refill(self) -> int:
        return self.burst if self.tokens_per_fill is None else self.tokens_per_fill


@dataclass(frozen=True)
class RouteLimits:
    """The buckets of every route of one kind (reads, writes, gRPC). Each route has its own:
    one per customer, keyed on the verified token's subject, and one global guard for all
    customers together, sized far above one customer's so it only trips when the sum of them
    would overload the services. A request needs a token from both."""

    per_customer: RouteLimit
    global_guard: RouteLimit

    @property
    def retry_after_s(self) -> int:
        """What a refused client is told to wait: the longest either bucket takes to give a
        token back (the reply does not say which one refused)."""
        return max(self.per_customer.fill_interval_s, self.global_guard.fill_interval_s)


@dataclass(frozen=True)
class GatewaySettings:
    """Every limit and timeout the gateway enforces, with its unit in its name."""

    reads: RouteLimits = RouteLimits(
        per_customer=RouteLimit.per_second(100), global_guard=RouteLimit.per_second(2000)
    )
    writes: RouteLimits = RouteLimits(
        per_customer=RouteLimit.per_second(20), global_guard=RouteLimit.per_second(400)
    )
    grpc: RouteLimits = RouteLimits(
        per_customer=RouteLimit.per_second(100), global_guard=RouteLimit.per_second(2000)
    )
    tracked_customers: int = 10_000
    """Customers whose buckets each route remembers (Envoy's max_dynamic_descriptors): beyond
    it the least recently seen one's bucket is dropped and starts full when it comes back."""
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
    worker_threads: int = 1
    """Envoy's worker threads (`--concurrency`; Envoy's default is one per core). On the
    two-core hosts Concord is measured on, the services' Python processes need the cores too: a
    second worker only adds context switches (docs/performance.md). Raise it on a gateway host
    of its own."""
    jwt_cache_size: int = 1000
    """Verified tokens Envoy keeps (`jwt_cache_config`), so a client's next request with the same
    token skips the RS256 signature check; expiry is still checked on every request."""
    trace_sampling_percent: float = 100.0
    """Requests the gateway starts a sampled trace for (the services follow its decision).
    Every one by default; docs/performance.md measures what lowering it saves."""
