"""The services and the OpenAPI document agree on every rule the contracts declare.

For each rule on each field of each public operation's request: a value just inside the rule
passes both the services' validator (contract_rules, as the interceptor runs it) and the
document's JSON Schema for that field; a value just outside fails both.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from runtime import contract_rules
from tests.support.contracts import service_descriptor
from tests.support.repo import built

Schema = dict[str, Any]


@dataclass(frozen=True)
class Case:
    operation: str
    field_path: list[FieldDescriptor]  # from the request down to the field with the rule
    value: Any  # a Python value for the field (a count of items for a list bound)
    inside: bool
    rule: str

    def __str__(self) -> str:
        where = ".".join(f.name for f in self.field_path)
        side = "inside" if self.inside else "outside"
        return f"{self.operation}:{where}:{self.rule}:{side}"


def string_cases(rules: Any) -> Iterator[tuple[str, Any, bool]]:
    low = rules.min_len if rules.HasField("min_len") else (1 if rules.required else 0)
    high = rules.max_len if rules.HasField("max_len") else max(low, 3)
    typical = "A" * max(low, min(3, high))
    yield "typical", typical, True
    if rules.required:
        yield "required", "", False
        yield "required", "   ", False
    if rules.HasField("max_len"):
        yield "max_len", "A" * high, True
        yield "max_len", "A" * (high + 1), False
    if rules.HasField("min_len") and low > 0:
        yield "min_len", "A" * low, True
        yield "min_len", "A" * (low - 1), False
    if rules.pattern:
        yield "pattern", "a a" + typical[3:], False


def integer_cases(rules: Any) -> Iterator[tuple[str, Any, bool]]:
    if rules.HasField("gte"):
        yield "gte", rules.gte or (1 if rules.required else 0), True
        yield "gte", rules.gte - 1, False
    if rules.HasField("lte"):
        yield "lte", rules.lte, True
        yield "lte", rules.lte + 1, False
    if rules.required:
        yield "required", 0, False


def count_cases(rules: Any) -> Iterator[tuple[str, Any, bool]]:
    if rules.HasField("min_items"):
        yield "min_items", rules.min_items, True
        if rules.min_items > 0:
            yield "min_items", rules.min_items - 1, False
    if rules.HasField("max_items"):
        yield "max_items", rules.max_items, True
        yield "max_items", rules.max_items + 1, False


def cases_of(
    operation: str, descriptor: Descriptor, above: list[FieldDescriptor]
) -> Iterator[Case]:
    for fld in descriptor.fields:
        path = [*above, fld]
        rules = contract_rules.rules_of(fld)
        if fld.message_type is not None and fld.message_type.full_name.startswith("shop."):
            yield from cases_of(operation, fld.message_type, path)
        if rules is None:
            continue
        if fld.is_repeated:
            for rule, count, inside in count_cases(rules):
                yield Case(operation, path, count, inside, rule)
        value_cases = (
            string_cases(rules)
            if fld.type == FieldDescriptor.TYPE_STRING
            else integer_cases(rules)
            if fld.message_type is None
            else iter(())
        )
        for rule, value, inside in value_cases:
            yield Case(operation, path, value, inside, f"item {rule}" if fld.is_repeated else rule)


@pytest.fixture(scope="module")
def document() -> Schema:
    return dict(json.loads(built("gateway/openapi.json").read_text()))


def operations(document: Schema) -> Iterator[tuple[str, Schema, Descriptor]]:
    for item in document["paths"].values():
        for operation in item.values():
            grpc_method = operation.get("x-grpc-method")
            if not grpc_method:
                continue
            service, method = grpc_method.strip("/").split("/")
            request = service_descriptor(service).methods_by_name[method].input_type
            yield operation["operationId"], operation, request


def all_cases() -> list[Case]:
    document = json.loads(built("gateway/openapi.json").read_text())
    return [c for op, _, request in operations(document) for c in cases_of(op, request, [])]


def service_accepts(request_type: Descriptor, case: Case) -> bool:
    """Whether contract_rules finds no violation at the case's field."""
    message: Message = GetMessageClass(request_type)()
    target: Any = message
    where = ""
    *parents, fld = case.field_path
    for parent in parents:
        target = (
            getattr(target, parent.name).add()
            if parent.is_repeated
            else getattr(target, parent.name)
        )
        where += f"{parent.name}[0]." if parent.is_repeated else f"{parent.name}."
    where += fld.name
    if fld.is_repeated and case.rule in ("min_items", "max_items"):
        items = getattr(target, fld.name)
        for _ in range(case.value):
            items.add() if fld.message_type is not None else items.append("A")
    elif fld.is_repeated:
        getattr(target, fld.name).append(case.value)
        where += "[0]"
    else:
        setattr(target, fld.name, case.value)
    return all(v.field != where for v in contract_rules.violations(message))


def field_schema(document: Schema, operation: Schema, case: Case) -> Schema:
    """The document's schema for the case's field, $refs resolved against the document."""
    names = [f.json_name for f in case.field_path]
    for parameter in operation.get("parameters", []):
        if parameter["name"] == ".".join(names):
            return dict(parameter["schema"])
    schema: Schema = operation["requestBody"]["content"]["application/json"]["schema"]
    for i, name in enumerate(names):
        schema = resolve(document, schema)
        schema = resolve(document, schema["properties"][name])
        if i < len(names) - 1 and case.field_path[i].is_repeated:
            schema = resolve(document, schema["items"])
    return schema


def resolve(document: Schema, schema: Schema) -> Schema:
    while "$ref" in schema or ("allOf" in schema and len(schema["allOf"]) == 1):
        if "$ref" in schema:
            schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
        else:
            schema = schema["allOf"][0]
    return schema


def document_accepts(document: Schema, operation: Schema, case: Case) -> bool:
    schema = copy.deepcopy(field_schema(document, operation, case))
    fld = case.field_path[-1]
    if fld.is_repeated and case.rule in ("min_items", "max_items"):
        schema["items"] = {}
        value: Any = [None] * case.value
    else:
        if fld.is_repeated:
            schema = resolve(document, schema["items"])
        value = (
            str(case.value)
            if schema.get("type") == "string" and isinstance(case.value, int)
            else case.value
        )
    return jsonschema.Draft202012Validator(schema).is_valid(value)


@pytest.mark.parametrize("case", all_cases(), ids=str)
def test_service_and_document_agree(document: Schema, case: Case) -> None:
    operation, request_type = next(
        (op, request) for op_id, op, request in operations(document) if op_id == case.operation
    )
    assert service_accepts(request_type, case) is case.inside, "the service disagrees"
    assert document_accepts(document, operation, case) is case.inside, "the document disagrees"


def test_every_rule_is_covered() -> None:
    """Each public operation whose request declares rules produces cases on both sides."""
    covered = {c.operation for c in all_cases()}
    assert {"InventoryService_CreateProduct", "OrdersService_PlaceOrder"} <= covered
    assert len(all_cases()) > 60
