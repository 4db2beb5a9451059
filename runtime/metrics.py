"""Prometheus metrics: every process serves /metrics on its own port (docs/observability.md).

Two kinds of numbers, kept apart on purpose:
- what happens in a call (RPC counts and latency by method and code) is counted as it happens,
  by `RpcMetricsInterceptor`, the outermost interceptor of every server;
- what a process holds (outbox backlog, consumer lag, breaker states, sagas by step) is read
  when Prometheus scrapes, by `Probe`s: async functions the platform and the services register.
  The scrape runs on prometheus-client's HTTP thread, so the probes are run on the process's
  event loop (they read the database and ask JetStream) and the thread waits for them, with a
  timeout. Nothing polls in the background, and a number is never older than the scrape.
Counters that belong to a component (dead letters, redeliveries) are its own stats, read by a
probe too, so the component does not import prometheus-client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from runtime.grpc_errors import final_code, with_unary
from runtime.logs import get_logger

log = get_logger(__name__)

PROBE_SHARE = 0.6
"""Of the scrape timeout, what each probe may take; the rest is for the exposition."""
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class Reading:
    """One sample a probe reports: `kind` "gauge" or "counter" (a counter's name has no
    `_total`; the exposition adds it)."""

    name: str
    help: str
    labels: tuple[tuple[str, str], ...]
    value: float
    kind: str = "gauge"


Probe = Callable[[], Awaitable[list[Reading]]]


def gauge(name: str, help_: str, value: float, **labels: str) -> Reading:
    return Reading(name, help_, tuple(labels.items()), value)


def counter(name: str, help_: str, value: float, **labels: str) -> Reading:
    return Reading(name, help_, tuple(labels.items()), value, kind="counter")


class _ProbeCollector(Collector):
    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self._loop = loop
        self._timeout_s = timeout_s
        self.probes: list[tuple[str, Probe]] = []

    def describe(self) -> Iterable[Metric]:
        return []  # unknown until scraped; keeps registration from running the probes

    async def _read(self) -> list[Reading]:
        """Every probe at once, each within the probe timeout, so one slow source (JetStream
        away) costs its own readings, not the scrape."""
        results = await asyncio.gather(
            *(asyncio.wait_for(probe(), self._timeout_s * PROBE_SHARE) for _, probe in self.probes),
            return_exceptions=True,
        )
        readings: list[Reading] = []
        for (name, _), result in zip(self.probes, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("metrics_probe_failed", probe=name, error=repr(result))
            else:
                readings += result
            failed = 1 if isinstance(result, BaseException) else 0
            readings.append(gauge("concord_metrics_probe_failed", _FAILED, failed, probe=name))
        return readings

    def collect(self) -> Iterator[Metric]:
        future = asyncio.run_coroutine_threadsafe(self._read(), self._loop)
        readings = future.result(timeout=self._timeout_s)
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        for r in readings:
            family = families.get(r.name)
            if family is None:
                kind = CounterMetricFamily if r.kind == "counter" else GaugeMetricFamily
                family = kind(r.name, r.help, labels=[k for k, _ in r.labels])
                families[r.name] = family
            family.add_metric([v for _, v in r.labels], r.value)
        yield from families.values()


_FAILED = "1 when a probe could not be read at this scrape (see the process log), else 0"


class Metrics:
    """A process's metrics: its own registry (no global state shared with the tests' process),
    the RPC instruments, and the probes read at scrape time."""

    def __init__(self, process: str, loop: asyncio.AbstractEventLoop, scrape_timeout_s: float):
        self.process = process
        self.registry = CollectorRegistry()
        for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(standard)
        self.rpcs = Counter(
            "concord_rpc_requests",
            "RPCs served, by full method and gRPC status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.rpc_latency = Histogram(
            "concord_rpc_duration_seconds",
            "Time to answer an RPC, by full method and gRPC status code",
            ["method", "code"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self._probes = _ProbeCollector(loop, scrape_timeout_s)
        self.registry.register(self._probes)
        self._server: Any = None
        self._thread: Any = None
        self.port: int | None = None

    def add_probe(self, name: str, probe: Probe) -> None:
        """`name` labels `concord_metrics_probe_failed`; unique within the process."""
        self._probes.probes.append((name, probe))

    def observe_rpc(self, method: str, code: str, elapsed_s: float) -> None:
        self.rpcs.labels(method, code).inc()
        self.rpc_latency.labels(method, code).observe(elapsed_s)

    def serve(self, host: str, port: int) -> int:
        """Serves /metrics on `port` (0: any free port); the port it got. A port already taken
        fails the start with an OSError naming it."""
        try:
            self._server, self._thread = start_http_server(port, host, registry=self.registry)
        except OSError as exc:
            raise OSError(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from exc
        self.port = int(self._server.server_port)
        log.info("metrics_listening", url=f"http://{host}:{self.port}/metrics")
        return self.port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None


class RpcMetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every unary call by method and final code. Placed first, it sees the
    code the client sees, after DomainErrorInterceptor turned errors into statuses. Streaming
    calls are long-lived (xDS, watches) and are counted when they end."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None:
            self._metrics.observe_rpc(method, grpc.StatusCode.UNIMPLEMENTED.name, 0.0)
            return handler
        if handler.unary_unary is not None:
            return with_unary(handler, self._timed(handler.unary_unary, method))
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._timed(handler.stream_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # server streams: see the class docstring

    def _timed(
        self, behavior: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]], method: str
    ) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
        async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.UNKNOWN
            try:
                result = await behavior(request, context)
                code = final_code(context) or grpc.StatusCode.OK
                return result
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except BaseException:
                code = final_code(context) or grpc.StatusCode.UNKNOWN
                raise
            finally:
                self._metrics.observe_rpc(method, code.name, time.perf_counter() - started)

        return handler
