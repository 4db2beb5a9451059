"""Traces through the whole system: one order placed through Envoy is one trace, with spans
from the gateway, orders, inventory, payments and PayGate, read back from the JSON-lines span
files (runtime/tracing.py for the processes; Envoy's, which it exports over OTLP only, through
the registry's span receiver, registry/span_receiver.py), and `devstack trace` prints it. Real
NATS, services, PayGate, registry and Envoy on free ports. With OTEL_EXPORTER_OTLP_ENDPOINT set,
every process and Envoy export to an OTLP receiver (tests/support/otlp.py) instead.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from runtime.trace_files import SpanRecord, order_traces_in
from tests.support.gateway import admin_token, call, token_for
from tests.support.orders_through_gateway import stock_and_credit
from tests.support.otlp import OtlpReceiver
from tests.support.processes import ServiceRunner
from tools.runner.gateway import Gateway
from tools.runner.topology import Topology

SETTLE_TIMEOUT_S = 60.0
"""How long the saga and the span export may take before a test gives up."""
POLL_INTERVAL_S = 0.2
SERVICES = {"orders", "inventory", "payments", "paygate"}
GATEWAY = "gateway"
"""Envoy's `service_name` (gateway/envoy.yaml.tmpl)."""


def place_confirmed_order(gateway: Gateway, product_id: str, **headers: str) -> str:
    token = token_for("alice")
    order = {"lines": [{"productId": product_id, "quantity": 2}]}
    reply = call(gateway, "POST", "/v1/orders", token=token, body=order, headers=headers)
    assert reply.status == 200, reply.body
    order_id = str(reply.json()["order"]["orderId"])
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        got = call(gateway, "GET", f"/v1/orders/{order_id}", token=token).json()["order"]
        if got["status"] == "ORDER_STATUS_CONFIRMED":
            return order_id
        assert time.monotonic() < deadline, got
        time.sleep(POLL_INTERVAL_S)


def order_trace(topology: Topology, order_id: str) -> tuple[str, list[SpanRecord]]:
    """The order's one trace, once spans from every service it touched are written, and the
    producer of every message consumed in it (each process flushes its spans on its own
    schedule, so a consumer's span can be on disk before its producer's)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        traces = order_traces_in(topology.data_dir, order_id)
        every = [s for spans in traces.values() for s in spans]
        services = {s.service for s in every}
        ids = {s.span_id for s in every}
        producers_written = all(str(s.parent_span_id) in ids for s in every if s.kind == "CONSUMER")
        if (services >= {*SERVICES, GATEWAY} and producers_written) or time.monotonic() > deadline:
            assert len(traces) == 1, {t: {s.service for s in spans} for t, spans in traces.items()}
            [(trace_id, spans)] = traces.items()
            assert {s.service for s in spans} >= {*SERVICES, GATEWAY}, sorted(
                {s.service for s in spans}
            )
            return trace_id, spans
        time.sleep(POLL_INTERVAL_S)


def place_order_span(spans: list[SpanRecord]) -> SpanRecord:
    [span] = [s for s in spans if s.kind == "SERVER" and s.name.endswith("/PlaceOrder")]
    assert span.service == "orders"
    return span


def by_id(spans: list[SpanRecord]) -> dict[str, SpanRecord]:
    return {s.span_id: s for s in spans}


def test_one_order_is_one_trace_across_every_service_and_jetstream(
    services: ServiceRunner, gateway: Gateway, topology: Topology
) -> None:
    services.start_shop()
    product_id = stock_and_credit(gateway, "alice")

    order_id = place_confirmed_order(gateway, product_id)
    _, spans = order_trace(topology, order_id)

    spans_by_id = by_id(spans)
    placed = place_order_span(spans)
    # Envoy started the trace: its span (received by the registry) is the root, the parent
    # of the first service span.
    gateway_span = spans_by_id[str(placed.parent_span_id)]
    assert (gateway_span.service, gateway_span.kind) == (GATEWAY, "SERVER")
    assert gateway_span.parent_span_id is None
    assert gateway_span.start_ns <= placed.start_ns <= placed.end_ns <= gateway_span.end_ns
    # Across JetStream: every message processed in the trace is the child of the span that
    # produced it, in another service, with the same message id.
    consumed = [s for s in spans if s.kind == "CONSUMER"]
    assert {s.service for s in consumed} >= {"orders", "inventory", "payments"}
    for consumer in consumed:
        producer = spans_by_id[str(consumer.parent_span_id)]
        assert producer.kind == "PRODUCER", (consumer.name, producer.name)
        assert producer.service != consumer.service
        message_id = "messaging.message.id"
        assert producer.attributes[message_id] == consumer.attributes[message_id]
    # PayGate's server span is the child of payments' client call to it.
    [authorize] = [s for s in spans if s.service == "paygate" and s.name.endswith("/Authorize")]
    caller = spans_by_id[str(authorize.parent_span_id)]
    assert (caller.service, caller.kind) == ("payments", "CLIENT")
    # The saga's steps are spans of their own in orders.
    steps = {s.name for s in spans if s.service == "orders" and s.name.startswith("saga ")}
    assert {"saga start", "saga authorizing", "saga done"} <= steps


def test_a_client_traceparent_is_continued_through_the_gateway(
    services: ServiceRunner, gateway: Gateway, topology: Topology
) -> None:
    services.start_shop()
    product_id = stock_and_credit(gateway, "alice")
    client_trace, client_span = secrets.token_hex(16), secrets.token_hex(8)

    order_id = place_confirmed_order(
        gateway, product_id, traceparent=f"00-{client_trace}-{client_span}-01"
    )
    trace_id, spans = order_trace(topology, order_id)

    assert trace_id == client_trace
    placed = place_order_span(spans)
    # Envoy's span sits between the client's and the first service's.
    gateway_span = by_id(spans)[str(placed.parent_span_id)]
    assert gateway_span.service == GATEWAY
    assert gateway_span.parent_span_id == client_span


def test_devstack_trace_prints_the_orders_waterfall(
    services: ServiceRunner, gateway: Gateway, topology: Topology
) -> None:
    services.start_shop()
    order_id = place_confirmed_order(gateway, stock_and_credit(gateway, "alice"))
    trace_id, spans = order_trace(topology, order_id)

    printed = devstack(topology, "trace", order_id)

    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    assert all(service in lines[0] for service in SERVICES)
    rows = [line for line in lines if " ms |" in line]
    assert len(rows) >= len(spans)  # spans written since (the last acks) are printed too
    assert lines[0].startswith(f"trace {trace_id}: {len(rows)} spans across ")
    # Children are indented under their parents: the saga step under PlaceOrder.
    indent = {_name(row).split(" [")[0].strip(): _depth(row) for row in rows}
    assert indent["saga start"] > indent["/shop.orders.v1.OrdersService/PlaceOrder"]

    unknown = devstack(topology, "trace", "ord_unknown")
    assert unknown.returncode == 1
    assert "no trace has a span for order ord_unknown" in unknown.stdout


def test_an_admin_reads_an_orders_saga_and_trace_through_the_gateway_and_no_one_else(
    services: ServiceRunner, gateway: Gateway, topology: Topology
) -> None:
    services.start_shop()
    order_id = place_confirmed_order(gateway, stock_and_credit(gateway, "alice"))
    trace_id, spans = order_trace(topology, order_id)
    admin = admin_token()

    saga = call(gateway, "GET", f"/v1/orders/{order_id}/saga", token=admin)
    traced = call(gateway, "GET", f"/v1/orders/{order_id}/trace", token=admin)

    assert saga.status == 200, saga.body
    steps = [s["step"] for s in saga.json()["saga"]["steps"]]
    assert steps[0] == "SAGA_STEP_RESERVING" and steps[-1] == "SAGA_STEP_DONE", steps
    assert saga.json()["saga"]["step"] == "SAGA_STEP_DONE"
    assert len(saga.json()["saga"]["commandsSent"]) >= 2
    assert traced.status == 200, traced.body
    first = traced.json()["traces"][0]
    assert first["traceId"] == trace_id
    assert set(first["services"]) >= {*SERVICES, GATEWAY}
    answered = {s["spanId"] for s in first["spans"]}
    assert answered >= {s.span_id for s in spans}  # spans written since are answered too
    # The gateway's span opens the trace; PlaceOrder's is its child, inside it.
    assert (first["spans"][0]["service"], first["spans"][0]["startOffsetMs"]) == (GATEWAY, 0)
    placed = [s for s in first["spans"] if s["name"].endswith("/PlaceOrder")]
    assert placed[0]["parentSpanId"] == first["spans"][0]["spanId"]
    assert placed[0]["startOffsetMs"] >= 0 and placed[0]["attributes"]["order.id"] == order_id
    assert all(s["durationMs"] >= 0 for s in first["spans"])

    # Admin only: a customer, even the order's own, is refused; no token is unauthenticated.
    for path in (f"/v1/orders/{order_id}/saga", f"/v1/orders/{order_id}/trace"):
        customer = call(gateway, "GET", path, token=token_for("alice"))
        assert (customer.status, customer.json()["code"]) == (403, 7), customer.body
        anonymous = call(gateway, "GET", path)
        assert (anonymous.status, anonymous.json()["code"]) == (401, 16), anonymous.body
    # Clear errors on bad input: an unknown order, a malformed id.
    for view in ("saga", "trace"):
        unknown = call(gateway, "GET", f"/v1/orders/ord_unknown/{view}", token=admin)
        assert (unknown.status, unknown.json()["code"]) == (404, 5), unknown.body
    malformed = call(gateway, "GET", "/v1/orders/ord%20x/trace", token=admin)
    assert (malformed.status, malformed.json()["code"]) == (400, 3), malformed.body
    # The repairs stay internal: no route reaches them by gRPC name, as REST or gRPC.
    repair = call(gateway, "POST", "/shop.orders.v1.OrdersAdminService/ResolveSaga", token=admin)
    assert repair.status == 404, repair.body


def _name(row: str) -> str:
    """What follows the timeline bar: the indented name and the service."""
    return row.split("|", 2)[2][1:]


def _depth(row: str) -> int:
    name = _name(row)
    return len(name) - len(name.lstrip(" "))


def devstack(topology: Topology, *args: str) -> subprocess.CompletedProcess[str]:
    env: dict[str, Any] = {
        **os.environ,
        "CONCORD_DATA_DIR": str(topology.data_dir),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    return subprocess.run(
        [sys.executable, "-m", "tools.devstack", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.fixture
def otlp_receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    """An OTLP collector named by OTEL_EXPORTER_OTLP_ENDPOINT for every process started after
    it: the services' exporters and the rendering of Envoy's collector cluster read it."""
    receiver = OtlpReceiver().start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    try:
        yield receiver
    finally:
        receiver.stop()


def test_with_an_otlp_endpoint_every_process_and_envoy_export_one_trace(
    otlp_receiver: OtlpReceiver, services: ServiceRunner, gateway: Gateway, topology: Topology
) -> None:
    services.start_shop()
    order_id = place_confirmed_order(gateway, stock_and_credit(gateway, "alice"))

    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        spans = otlp_receiver.spans()
        placed = [s for s in spans if s.service == "orders" and s.name.endswith("/PlaceOrder")]
        trace = [s for s in spans if placed and s.trace_id == placed[-1].trace_id]
        if {s.service for s in trace} >= {*SERVICES, GATEWAY} or time.monotonic() > deadline:
            break
        time.sleep(POLL_INTERVAL_S)
    assert {s.service for s in trace} >= {*SERVICES, GATEWAY}, sorted({s.service for s in trace})
    # Envoy's span is the parent of the first service span, and the trace's root.
    [envoy] = [s for s in trace if s.span_id == placed[-1].parent_span_id]
    assert envoy.service == GATEWAY
    assert envoy.parent_span_id is None
    # Nothing went to the span files: OTLP replaces them, and the trace query says where to look.
    assert not order_traces_in(topology.data_dir, order_id)
    refused = call(gateway, "GET", f"/v1/orders/{order_id}/trace", token=admin_token())
    assert refused.status == 400, refused.body
    assert refused.json()["code"] == 9  # FAILED_PRECONDITION
    assert otlp_receiver.endpoint in refused.json()["message"]
