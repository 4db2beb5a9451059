"""Compatibility judged per channel by a real registry with real buf: for every rule, one edit of
a copy of the contracts that the registry must refuse (on the right channel, at the right file
and line, naming the consumers it breaks) and additions it must let by. One buf build and one
CheckCompatibility (one buf breaking) per edit, against one published base."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from concord.registry.v1 import contracts_service_pb2, contracts_service_pb2_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.support.buf_workspace import copy_buf_workspace
from tests.support.registry_process import ConcordProcess, registry_process
from tools.devstack import registry_cli

GRPC, REST, EVENTS = (
    contracts_service_pb2.CHANNEL_GRPC,
    contracts_service_pb2.CHANNEL_REST,
    contracts_service_pb2.CHANNEL_EVENTS,
)
ORDERS_API = "shop/orders/v1/orders_service.proto"
ORDER = "shop/orders/v1/orders.proto"
ORDER_EVENTS = "shop/orders/v1/events.proto"
INVENTORY_API = "shop/inventory/v1/inventory_service.proto"
INVENTORY_EVENTS = "shop/inventory/v1/events.proto"
PAYMENT_EVENTS = "shop/payments/v1/events.proto"
PAYMENT_VOIDED = """// An authorisation was cancelled; the hold is returned to the account.
message PaymentVoided {
  // Unique id of this event.
  string event_id = 1;
  // The order (the payment's aggregate id).
  string order_id = 2;
  // Version of the payment after this event.
  int64 version = 3;
  // When it happened.
  google.protobuf.Timestamp occur_time = 4;
  // Amount returned, zero when nothing was held.
  int64 amount_minor = 5;
  // Why.
  string reason = 6;
  // Id of the command this answers.
  string causation_id = 7;
}
"""


@dataclass(frozen=True)
class Edit:
    file: str
    old: str
    new: str


@dataclass(frozen=True)
class Breaking:
    name: str
    edits: tuple[Edit, ...]
    channel: int
    rule: str
    file: str
    at: str
    """Text on the finding's line of the edited file ("" when the element is gone: line 0)."""
    consumers: tuple[str, ...] = ()
    only: bool = False
    """No other channel breaks: the point of judging channels apart."""


REFUSED = [
    Breaking(
        "rest-path",
        (Edit(ORDERS_API, '{get: "/v1/orders/{order_id}/events"}', '{get: "/v1/orders/{order_id}/history"}'),),
        REST, "HTTP_SAME_PATH", ORDERS_API, "rpc ListOrderEvents(", only=True,
    ),
    Breaking(
        "rest-verb",
        (Edit(ORDERS_API, '{get: "/v1/orders/{order_id}"}', '{delete: "/v1/orders/{order_id}"}'),),
        REST, "HTTP_SAME_VERB", ORDERS_API, "rpc GetOrder(", only=True,
    ),
    Breaking(
        "rest-body",
        (Edit(ORDERS_API, 'post: "/v1/orders/{order_id}:cancel"\n      body: "*"', 'post: "/v1/orders/{order_id}:cancel"\n      body: "reason"'),),
        REST, "HTTP_SAME_BODY", ORDERS_API, "rpc CancelOrder(", only=True,
    ),
    Breaking(
        "rest-json-name",
        (Edit(ORDER, "string rejection_reason = 7;", 'string rejection_reason = 7 [json_name = "why"];'),),
        REST, "FIELD_SAME_JSON_NAME", ORDER, "rejection_reason", only=True,
    ),
    Breaking(
        "events-removed-field",
        (Edit(INVENTORY_EVENTS, "  string causation_id = 6;\n", '  reserved 6;\n  reserved "causation_id";\n'),),
        EVENTS, "EVENT_FIELD_NO_DELETE", INVENTORY_EVENTS, "message StockReserved",
        consumers=("orders",), only=True,
    ),
    Breaking(
        "events-changed-type",
        (Edit(INVENTORY_EVENTS, "  int64 version = 3;\n", "  int32 version = 3;\n"),),
        EVENTS, "EVENT_FIELD_SAME_TYPE", INVENTORY_EVENTS, "int32 version = 3;",
        consumers=("orders",),
    ),
    Breaking(
        "events-moved-oneof-member",
        (
            Edit(ORDER_EVENTS, "    // See OrderCancelled.\n    OrderCancelled order_cancelled = 9;\n", ""),
            Edit(ORDER_EVENTS, "order_saga_resolved = 11;\n  }\n", "order_saga_resolved = 11;\n  }\n  // See OrderCancelled.\n  OrderCancelled order_cancelled = 9;\n"),
        ),
        EVENTS, "EVENT_FIELD_SAME_ONEOF", ORDER_EVENTS, "OrderCancelled order_cancelled = 9;",
    ),
    Breaking(
        "events-removed-type",
        (Edit(PAYMENT_EVENTS, PAYMENT_VOIDED, ""),),
        EVENTS, "EVENT_TYPE_NO_DELETE", PAYMENT_EVENTS, "", consumers=("orders",),
    ),
    Breaking(
        "grpc-renumbered-field",
        (Edit(INVENTORY_API, "repeated string product_ids = 1 [", "repeated string product_ids = 9 ["),),
        GRPC, "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED", INVENTORY_API, "message BatchGetProductsRequest",
        consumers=("orders",),
    ),
]  # fmt: skip

ALLOWED = {
    "new-field": (Edit(PAYMENT_EVENTS, "  string causation_id = 7;\n}", "  string causation_id = 7;\n  // A note.\n  string note = 8;\n}"),),
    "new-rpc": (Edit(INVENTORY_API, "rpc GetReservation(", "rpc PeekReservation(GetReservationRequest) returns (GetReservationResponse) {\n    option (google.api.http) = {get: \"/v1/products/reservations/{order_id}:peek\"};\n  }\n  // See PeekReservation.\n  rpc GetReservation("),),
    "new-event-type": (Edit(PAYMENT_EVENTS, PAYMENT_VOIDED, PAYMENT_VOIDED + "\n// A note was added to a payment.\nmessage PaymentNoted {\n  // Unique id of this event.\n  string event_id = 1;\n}\n"),),
    "new-additional-binding": (Edit(ORDERS_API, '{get: "/v1/orders/{order_id}"}', '{\n      get: "/v1/orders/{order_id}"\n      additional_bindings: {get: "/v1/customers/me/orders/{order_id}"}\n    }'),),
    "new-major-version-beside-v1": (),  # filled by the test: see add_orders_v2
}  # fmt: skip


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    """One registry for the module, whose latest version is the repository's contracts."""
    tmp = tmp_path_factory.mktemp("channels")
    process = registry_process(tmp / "data", tmp / "logs").start()
    try:
        with grpc.insecure_channel(process.address) as channel:
            base = copy_buf_workspace(tmp / "base")
            stub(channel).PublishContract(
                contracts_service_pb2.PublishContractRequest(
                    label="base", descriptor_set=build(base)
                ),
                timeout=120,
            )
            yield channel
    finally:
        process.stop()


def stub(channel: grpc.Channel) -> contracts_service_pb2_grpc.ContractsServiceStub:
    return contracts_service_pb2_grpc.ContractsServiceStub(channel)


def build(root: Path) -> bytes:
    return registry_cli.buf_build(root, "proto", root / "candidate.binpb")


def edited(root: Path, edits: tuple[Edit, ...]) -> Path:
    copy_buf_workspace(root)
    for e in edits:
        path = root / "proto" / e.file
        text = path.read_text()
        assert e.old in text, f"{e.old!r} not in {e.file}"
        path.write_text(text.replace(e.old, e.new, 1))
    return root


def add_orders_v2(root: Path, rest_prefix: str = "/v2/") -> None:
    """shop.orders.v2 beside v1, breaking what v1 promised (no rejection_reason, other paths)."""
    v1, v2 = root / "proto/shop/orders/v1", root / "proto/shop/orders/v2"
    v2.mkdir()
    for source in v1.glob("*.proto"):
        text = source.read_text().replace("shop.orders.v1", "shop.orders.v2")
        text = text.replace("shop/orders/v1/", "shop/orders/v2/").replace(
            '"/v1/', f'"{rest_prefix}'
        )
        (v2 / source.name).write_text(text)
    order = v2 / "orders.proto"
    order.write_text(order.read_text().replace("  string rejection_reason = 7;\n", ""))


def check(channel: grpc.Channel, root: Path) -> contracts_service_pb2.CheckCompatibilityResponse:
    return stub(channel).CheckCompatibility(
        contracts_service_pb2.CheckCompatibilityRequest(descriptor_set=build(root)), timeout=120
    )


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: c.name)
def test_a_breaking_change_is_refused_on_its_channel_where_it_is(
    published: grpc.Channel, tmp_path: Path, case: Breaking
) -> None:
    root = edited(tmp_path / "ws", case.edits)
    reply = check(published, root)
    assert not reply.compatible
    verdicts = {v.channel: v for v in reply.channels}
    assert sorted(verdicts) == [GRPC, REST, EVENTS]
    assert not verdicts[case.channel].compatible
    if case.only:
        assert [v.channel for v in reply.channels if not v.compatible] == [case.channel]
    hits = [f for f in verdicts[case.channel].findings if f.rule == case.rule]
    assert hits, [f"{f.rule} {f.message}" for f in verdicts[case.channel].findings]
    finding = hits[0]
    assert (finding.channel, finding.file) == (case.channel, case.file)
    if case.at:
        lines = (root / "proto" / case.file).read_text().splitlines()
        assert case.at in lines[finding.line - 1], (finding.line, finding.message)
    else:
        assert finding.line == 0
    assert tuple(reply.broken_consumers) == case.consumers
    assert tuple(finding.consumers) == case.consumers
    assert any(case.rule in line and case.file in line for line in reply.violations)


def test_a_new_major_version_may_not_take_the_old_ones_routes(
    published: grpc.Channel, tmp_path: Path
) -> None:
    root = edited(tmp_path / "ws", ())
    add_orders_v2(root, rest_prefix="/v1/")
    reply = check(published, root)
    assert [v.channel for v in reply.channels if not v.compatible] == [REST]
    taken = [f for f in reply.channels[1].findings if f.rule == "HTTP_ROUTE_TAKEN"]
    assert {f.file for f in taken} == {"shop/orders/v2/orders_service.proto"}
    assert any("shop.orders.v1.OrdersService.GetOrder" in f.message for f in taken)
    lines = (root / "proto/shop/orders/v2/orders_service.proto").read_text().splitlines()
    assert all(lines[f.line - 1].lstrip().startswith("rpc ") for f in taken)


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_an_addition_passes_every_channel(
    published: grpc.Channel, tmp_path: Path, name: str
) -> None:
    root = edited(tmp_path / "ws", ALLOWED[name])
    if name == "new-major-version-beside-v1":
        add_orders_v2(root)
    reply = check(published, root)
    assert reply.compatible, list(reply.violations)
    assert [(v.channel, v.compatible) for v in reply.channels] == [
        (GRPC, True), (REST, True), (EVENTS, True)
    ]  # fmt: skip
    assert not reply.broken_consumers


@pytest.fixture
def channel(registry: ConcordProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(registry.address) as channel:
        yield channel


def publish(
    channel: grpc.Channel, root: Path, label: str
) -> contracts_service_pb2.PublishContractResponse:
    return stub(channel).PublishContract(
        contracts_service_pb2.PublishContractRequest(label=label, descriptor_set=build(root)),
        timeout=120,
    )


def error_info(error: grpc.RpcError) -> tuple[str, dict[str, str]]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason, dict(info.metadata)
    raise AssertionError(f"no ErrorInfo in {status}")


def test_publish_refuses_a_rest_only_break_and_takes_a_new_major_version(
    channel: grpc.Channel, tmp_path: Path
) -> None:
    publish(channel, copy_buf_workspace(tmp_path / "base"), "base")
    path_moved = edited(tmp_path / "moved", REFUSED[0].edits)
    with pytest.raises(grpc.RpcError) as caught:
        publish(channel, path_moved, "moved")
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = caught.value.details() or ""
    assert "on rest" in details
    assert f"rest {ORDERS_API}:" in details and "HTTP_SAME_PATH" in details
    assert error_info(caught.value) == (
        "BREAKING_CHANGE",
        {"against_version": "1", "channels": "rest", "broken_consumers": ""},
    )

    beside = edited(tmp_path / "v2", ())
    add_orders_v2(beside)
    assert publish(channel, beside, "orders-v2").contract.version == 2


def test_contracts_check_prints_each_channel_and_the_consumers_broken(
    channel: grpc.Channel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(channel, copy_buf_workspace(tmp_path / "base"), "base")
    assert registry_cli.check_repo(channel, copy_buf_workspace(tmp_path / "same")) == 0
    root = edited(tmp_path / "ws", REFUSED[4].edits)  # a field removed from StockReserved
    assert registry_cli.check_repo(channel, root) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == ["grpc: compatible", "rest: compatible", "events: compatible"]
    assert "events: BREAKING" in out
    assert any(
        line.startswith(f"  {INVENTORY_EVENTS}:9 EVENT_FIELD_NO_DELETE")
        and "(breaks orders)" in line
        for line in out
    ), out
    assert out[-1] == "broken consumers: orders"
