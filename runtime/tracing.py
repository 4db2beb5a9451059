"""Traces: OpenTelemetry spans for every gRPC call, every message over JetStream, the saga's
steps and the calls to PayGate, so one order is one trace across every process it touched.

`configure(service, data_dir)` is called once per process (runtime/server.py for services and
the registry, standins/paygate for the stand-in). Spans go over OTLP/gRPC when
OTEL_EXPORTER_OTLP_ENDPOINT is set, otherwise to JSON lines under
`<data_dir>/traces/<service>.<pid>.jsonl` (one file per process, so instances sharing a data
folder never interleave lines), which `python -m tools.devstack trace <order_id>` reads.
CONCORD_TRACING=off turns tracing off (the benchmark's baseline).

Across JetStream the W3C `traceparent` header is the span context: staging a message in the
outbox records a PRODUCER span and stores its traceparent with the row; the consumer's
CONSUMER span is that span's child, so causality survives the outbox, a crash and a redelivery.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from opentelemetry import context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    INVALID_SPAN,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes, AttributeValue

from runtime.logs import current_context
from runtime.span_files import ENDED_FILES_KEPT, JsonLinesExporter, max_file_bytes, traces_dir

ORDER_ID = "order.id"
"""The span attribute `devstack trace` finds an order's trace by."""
EXPORT_DELAY_MS = 200
"""How long finished spans wait to be written: short, so a trace is readable right away."""

OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
"""The standard variable: when set, spans go to that collector, not to files."""
OTLP_TIMEOUT_S = 2.0
"""Bound on one export, retries included, unless OTEL_EXPORTER_OTLP_TIMEOUT says otherwise: the
last flush runs on shutdown, so a collector that is down must not hold a stop up for long."""

_propagator = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
_processor: SpanProcessor | None = None
_SCOPE = InstrumentationScope("concord")


def enabled() -> bool:
    return os.environ.get("CONCORD_TRACING", "on").lower() not in ("off", "0", "false")


def _exporter(service: str, data_dir: Path) -> SpanExporter:
    if os.environ.get(OTLP_ENDPOINT_ENV):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        # The endpoint and its options come from the OTEL_* variables; the timeout too when set.
        timeouts = ("OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
        if any(name in os.environ for name in timeouts):
            return OTLPSpanExporter()
        return OTLPSpanExporter(timeout=OTLP_TIMEOUT_S)
    return JsonLinesExporter(
        traces_dir(data_dir), service, os.getpid(), max_file_bytes(), ENDED_FILES_KEPT
    )


def configure(service: str, data_dir: Path) -> None:
    """Installs the process's tracer provider; does nothing when tracing is off."""
    global _provider, _processor
    if not enabled() or _provider is not None:
        return
    _provider = TracerProvider(resource=Resource.create({"service.name": service}))
    _processor = BatchSpanProcessor(
        _exporter(service, data_dir), schedule_delay_millis=EXPORT_DELAY_MS
    )
    _provider.add_span_processor(_processor)
    trace.set_tracer_provider(_provider)


def shutdown() -> None:
    """Writes out the spans still buffered; called last on a graceful stop."""
    if _provider is not None:
        _provider.shutdown()


def active() -> bool:
    """Whether `configure` installed tracing in this process."""
    return _provider is not None


def current_traceparent() -> str | None:
    """The current span's context as a W3C traceparent, or None outside any span."""
    ctx = trace.get_current_span().get_span_context()
    return _traceparent(ctx) if ctx.is_valid else None


def traceparent_of(span: Span) -> str:
    """`span`'s context as a W3C traceparent (version 00), the form the propagator writes."""
    return _traceparent(span.get_span_context())


def _traceparent(ctx: SpanContext) -> str:
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


def context_of(traceparent: str | None) -> context.Context | None:
    """The context a `traceparent` received from elsewhere stands for; None when absent."""
    if not traceparent:
        return None
    return _propagator.extract({"traceparent": traceparent})


def tag_order(order_id: str) -> None:
    """Marks the current span with the order it serves, so the order's trace can be found."""
    if order_id:
        trace.get_current_span().set_attribute(ORDER_ID, order_id)


def produced(subject: str, message_id: str, type_name: str) -> str | None:
    """Records the PRODUCER span of a message being staged and returns its traceparent, which
    travels with the message; None when tracing is off.

    Staging is an instant with nothing running inside it, so the span is recorded as one: its
    context built here, the sampler asked, the finished span handed to the processor. The
    Tracer's path (a live span, its lock and attribute checks, start and end) measured about
    60 µs of CPU a message on the database thread, 12 messages an order, where this takes a
    fraction of it."""
    if _provider is None or _processor is None:
        return None
    name = f"{subject} publish"
    attributes = _messaging(subject, message_id, type_name)
    order_id = current_context().get("order_id")
    if isinstance(order_id, str) and order_id:
        attributes[ORDER_ID] = order_id  # the order of the work that staged it, when known
    parent, context_, recording = _new_context(_provider, None, name, SpanKind.PRODUCER, attributes)
    if recording:
        now = time.time_ns()
        _processor.on_end(
            ReadableSpan(
                name=name,
                context=context_,
                parent=parent,
                resource=_provider.resource,
                attributes=attributes,
                kind=SpanKind.PRODUCER,
                start_time=now,
                end_time=now,
                instrumentation_scope=_SCOPE,
            )
        )
    return _traceparent(context_)


def start(
    name: str,
    kind: SpanKind,
    attributes: dict[str, AttributeValue],
    parent: context.Context | None = None,
) -> Span:
    """A live span, the child of `parent` (the current context when None); it records until
    `end()`. The caller makes it current if work runs inside it. When tracing is off, or the
    sampler drops it, a span that records nothing (and still carries a context on)."""
    if _provider is None or _processor is None:
        return INVALID_SPAN
    parent_span, context_, recording = _new_context(_provider, parent, name, kind, attributes)
    if not recording:
        return NonRecordingSpan(context_)
    return _RecordedSpan(
        name, context_, parent_span, kind, attributes, _provider.resource, _processor
    )


def _new_context(
    provider: TracerProvider,
    parent: context.Context | None,
    name: str,
    kind: SpanKind,
    attributes: Attributes,
) -> tuple[SpanContext | None, SpanContext, bool]:
    """A new span's parent, its own context and whether it records, as the SDK's Tracer
    decides them: the parent's trace (or a new one) and the sampler's verdict."""
    parent_span: SpanContext | None = trace.get_current_span(parent).get_span_context()
    ids = provider.id_generator
    if parent_span is not None and parent_span.is_valid:
        trace_id = parent_span.trace_id
    else:
        parent_span, trace_id = None, ids.generate_trace_id()
    sampled = provider.sampler.should_sample(parent, trace_id, name, kind, attributes)
    flags = TraceFlags(TraceFlags.SAMPLED if sampled.decision.is_sampled() else TraceFlags.DEFAULT)
    context_ = SpanContext(
        trace_id,
        ids.generate_span_id(),
        is_remote=False,
        trace_flags=flags,
        trace_state=sampled.trace_state,
    )
    return parent_span, context_, sampled.decision.is_recording()


class _RecordedSpan(ReadableSpan, Span):
    """A live span that is its own record: ended, it goes to the span processor as it is.

    Our own rather than the SDK's Span, for its cost: with ~14 live spans an order (a SERVER
    and CLIENT span per call, a CONSUMER span per message, the saga's steps), the SDK's path
    (a lock per span, attribute limits checked at every set, a second record copied at the
    end) took about 30 µs a span where this takes about 13, a percent of saga throughput
    against issue 14's 10% budget. What it leaves out: span limits (the attributes are a few
    set by this codebase) and thread safety (a span lives in the one task that started it).
    The processor, exporters and the span's API are the SDK's."""

    def __init__(
        self,
        name: str,
        context_: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, AttributeValue],
        resource: Resource,
        processor: SpanProcessor,
    ) -> None:
        self._name = name
        self._context = self._span_context = context_
        self._parent = parent
        self._kind = kind
        self._attributes = self._settable = attributes
        self._events: list[Event] = []
        self._links = ()
        self._resource = resource
        self._status = Status(StatusCode.UNSET)
        self._start_time = time.time_ns()
        self._end_time: int | None = None
        self._instrumentation_scope = _SCOPE
        self._instrumentation_info = None
        self._processor = processor

    def get_span_context(self) -> SpanContext:
        return self._span_context

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is None:
            self._end_time = end_time if end_time is not None else time.time_ns()
            self._processor.on_end(self)

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if self._end_time is None:
            self._settable[key] = value

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        if self._end_time is None:
            self._settable.update(attributes)

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._end_time is None:
            self._events.append(Event(name, attributes, timestamp or time.time_ns()))

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end_time is None:
            self._status = status if isinstance(status, Status) else Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """The exception as a span event, with the semantic conventions' attributes."""
        recorded: dict[str, AttributeValue] = {
            "exception.type": _qualified(type(exception)),
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        recorded.update(attributes or {})
        self.add_event("exception", recorded, timestamp)


def consumed(
    subject: str, message_id: str, type_name: str, traceparent: str | None
) -> AbstractContextManager[Span]:
    """The CONSUMER span of processing one message: the child of its producer's span."""
    attributes = _messaging(subject, message_id, type_name)
    return _current(f"{subject} process", context_of(traceparent), SpanKind.CONSUMER, attributes)


def step(
    name: str, order_id: str = "", **attributes: AttributeValue
) -> AbstractContextManager[Span]:
    """An INTERNAL span for one piece of work (a saga step, a settlement) in the current trace."""
    if order_id:
        attributes[ORDER_ID] = order_id
    return _current(name, None, SpanKind.INTERNAL, attributes)


def resumed(traceparent: str | None, name: str, order_id: str = "") -> AbstractContextManager[Span]:
    """A span continuing a trace recorded earlier (`traceparent` read back from a database),
    for work a background job picks up later on behalf of a traced request."""
    attributes: dict[str, AttributeValue] = {ORDER_ID: order_id} if order_id else {}
    return _current(name, context_of(traceparent), SpanKind.INTERNAL, attributes)


@contextmanager
def _current(
    name: str,
    parent: context.Context | None,
    kind: SpanKind,
    attributes: dict[str, AttributeValue],
) -> Iterator[Span]:
    """A span current for the `with` block, ended after it; an exception marks it ERROR and is
    recorded on it. What `Tracer.start_as_current_span` does, in one generator instead of its
    three (it nests `use_span` and a decorator's): a consumer span per message makes it count."""
    span = start(name, kind, attributes, parent)
    token = context.attach(trace.set_span_in_context(span))
    try:
        yield span
    except Exception as error:  # BaseException (a cancellation) is not the work failing
        if span.is_recording():
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        raise
    finally:
        context.detach(token)
        span.end()


def _qualified(kind: type) -> str:
    module = kind.__module__
    return kind.__qualname__ if module in ("builtins", "") else f"{module}.{kind.__qualname__}"


def _messaging(subject: str, message_id: str, type_name: str) -> dict[str, AttributeValue]:
    return {
        "messaging.system": "nats",
        "messaging.destination.name": subject,
        "messaging.message.id": message_id,
        "messaging.message.type": type_name,
    }
