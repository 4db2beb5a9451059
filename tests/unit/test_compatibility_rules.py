"""Concord's own compatibility rules on edited copies of the real contracts, without buf or a
process: the cases the integration suite does not reach (messages an event carries, moved and
removed additional bindings, custom verbs, whose call a deleted RPC breaks)."""

from __future__ import annotations

from collections.abc import Callable

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor
from shop.inventory.v1 import events_pb2 as inventory_events
from shop.inventory.v1 import inventory_service_pb2
from shop.orders.v1 import orders_service_pb2

from registry.compatibility import ConsumerRecord
from registry.contract_index import ContractIndex
from registry.event_rules import event_findings, message_types
from registry.http_rules import http_findings
from registry.verdict import Channel, Finding
from runtime import catalogue

ROOTS = (inventory_events, inventory_service_pb2, orders_service_pb2)


def contracts() -> descriptor_pb2.FileDescriptorSet:
    """The compiled contracts of ROOTS and all they import, as a descriptor set."""
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def add(file: FileDescriptor) -> None:
        if file.name not in files:
            for dependency in file.dependencies:
                add(dependency)
            proto = descriptor_pb2.FileDescriptorProto()
            file.CopyToProto(proto)
            files[file.name] = proto

    for module in ROOTS:
        add(module.DESCRIPTOR)
    return descriptor_pb2.FileDescriptorSet(file=files.values())


def judged(
    edit: Callable[[dict[str, descriptor_pb2.FileDescriptorProto]], None],
) -> tuple[ContractIndex, ContractIndex]:
    before = contracts()
    after = descriptor_pb2.FileDescriptorSet()
    after.CopyFrom(before)
    edit({f.name: f for f in after.file})
    return (
        ContractIndex.parse(before.SerializeToString()),
        ContractIndex.parse(after.SerializeToString()),
    )


def message(file: descriptor_pb2.FileDescriptorProto, name: str) -> descriptor_pb2.DescriptorProto:
    return next(m for m in file.message_type if m.name == name)


def method(
    file: descriptor_pb2.FileDescriptorProto, name: str
) -> descriptor_pb2.MethodDescriptorProto:
    return next(m for s in file.service for m in s.method if m.name == name)


def http(method_proto: descriptor_pb2.MethodDescriptorProto) -> http_pb2.HttpRule:
    rule: http_pb2.HttpRule = method_proto.options.Extensions[annotations_pb2.http]
    return rule


def consumers_of(finding: Finding, published: ContractIndex) -> tuple[str, ...]:
    return ConsumerRecord(published, catalogue.CATALOGUE).broken_by(finding, published)


def test_event_types_are_the_top_level_messages_of_events_and_commands_files() -> None:
    published, _ = judged(lambda files: None)
    types = message_types(published)
    assert "shop.inventory.v1.StockReserved" in types
    assert "shop.inventory.v1.StockLine" not in types  # inventory.proto: carried, not an event
    assert "shop.inventory.v1.BatchGetProductsRequest" not in types


def test_a_field_removed_from_a_message_events_carry_breaks_their_consumers() -> None:
    def drop_quantity(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> None:
        line = message(files["shop/inventory/v1/inventory.proto"], "StockLine")
        kept = [f for f in line.field if f.name != "quantity"]
        del line.field[:]
        line.field.extend(kept)

    published, proposed = judged(drop_quantity)
    findings = event_findings(published, proposed)
    assert [(f.rule, f.element) for f in findings] == [
        ("EVENT_FIELD_NO_DELETE", "shop.inventory.v1.StockLine")
    ]
    assert "carried by events/commands" in findings[0].message
    assert "orders" in consumers_of(findings[0], published)


def test_a_proto3_optional_field_is_no_oneof_member() -> None:
    def make_optional(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> None:
        reserved = message(files["shop/inventory/v1/events.proto"], "StockReserved")
        field = next(f for f in reserved.field if f.name == "causation_id")
        reserved.oneof_decl.add(name="_causation_id")
        field.oneof_index = len(reserved.oneof_decl) - 1
        field.proto3_optional = True

    assert event_findings(*judged(make_optional)) == []


def test_keeping_the_old_route_as_an_additional_binding_passes() -> None:
    def move(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> None:
        rule = http(method(files["shop/orders/v1/orders_service.proto"], "GetOrder"))
        rule.additional_bindings.add(get=rule.get)
        rule.get = "/v1/customers/me/orders/{order_id}"

    assert http_findings(*judged(move)) == []


def test_removing_an_additional_binding_or_changing_a_custom_verb_breaks_rest() -> None:
    def publish(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> None:
        rule = http(method(files["shop/orders/v1/orders_service.proto"], "GetOrder"))
        rule.additional_bindings.add(get="/v1/me/orders/{order_id}")
        rule.additional_bindings.add().custom.kind = "HEAD"
        rule.additional_bindings[1].custom.path = "/v1/orders/{order_id}"

    base = contracts()
    publish({f.name: f for f in base.file})
    after = descriptor_pb2.FileDescriptorSet()
    after.CopyFrom(base)
    rule = http(
        method({f.name: f for f in after.file}["shop/orders/v1/orders_service.proto"], "GetOrder")
    )
    rule.additional_bindings[1].custom.kind = "OPTIONS"
    del rule.additional_bindings[0]
    findings = http_findings(
        ContractIndex.parse(base.SerializeToString()),
        ContractIndex.parse(after.SerializeToString()),
    )
    assert [(f.rule, f.message.split(": ")[1]) for f in findings] == [
        ("HTTP_BINDING_NO_DELETE", "GET /v1/me/orders/{order_id} is no longer bound (now GET /v1/orders/{order_id}, OPTIONS /v1/orders/{order_id})"),
        ("HTTP_SAME_VERB", "HEAD /v1/orders/{order_id} is now GET /v1/orders/{order_id}"),
    ]  # fmt: skip
    assert all(
        f.channel is Channel.REST and consumers_of(f, ContractIndex()) == () for f in findings
    )


def test_a_deleted_rpc_breaks_only_its_own_callers() -> None:
    published, _ = judged(lambda files: None)
    service = "shop.inventory.v1.InventoryService"

    def deleted(rpc: str) -> Finding:
        return Finding(
            Channel.GRPC,
            "shop/inventory/v1/inventory_service.proto",
            10,
            "RPC_NO_DELETE",
            f'Previously present RPC "{rpc}" on service "InventoryService" was deleted.',
            element=service,
        )

    assert consumers_of(deleted("BatchGetProducts"), published) == ("orders",)
    assert consumers_of(deleted("AdjustStock"), published) == ()
