"""runtime/tracing.py as `configure` leaves it, but its spans kept in memory: for tests that
check what a piece of code records without a stack of processes or files."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from runtime import tracing


@contextmanager
def recorded_spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process for the block, every finished span exported to memory."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    processor = SimpleSpanProcessor(spans)
    provider.add_span_processor(processor)
    with monkeypatch.context() as patched:
        patched.setattr(tracing, "_provider", provider)
        patched.setattr(tracing, "_processor", processor)
        yield spans
