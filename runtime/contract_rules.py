"""Enforces the rules the contracts declare on request fields (`concord.validate.v1.rules`).

A length, a range or a pattern is written once, on the field in `proto/`; the interceptor in
`grpc_errors` runs `enforce` on every request before its handler, and `tools/openapi` publishes
the same rules as JSON Schema keywords, so what a client reads and what a service refuses
cannot drift. Handlers keep only the rules a contract cannot state (a product named twice, a
version above the order's own).

Our own code rather than protovalidate: its rules are CEL expressions, which the OpenAPI
generator would have to translate back into JSON Schema; this small declarative set maps one to
one onto JSON Schema keywords, and its semantics (searched patterns, code-point lengths) are
JSON Schema's.
"""

from __future__ import annotations

import re
from functools import cache

from concord.validate.v1 import rules_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from runtime.errors import FieldViolation, InvalidArgumentError

FieldRules = rules_pb2.FieldRules
_INTEGERS = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
    }
)


def rules_of(fld: FieldDescriptor) -> FieldRules | None:
    """The field's declared rules, or None when it declares none."""
    options = fld.GetOptions()
    if not options.HasExtension(rules_pb2.rules):
        return None
    return options.Extensions[rules_pb2.rules]


def enforce(message: Message) -> None:
    """Raises InvalidArgumentError naming every broken rule of the message, nested ones too."""
    found = violations(message)
    if found:
        raise InvalidArgumentError(found)


def violations(message: Message, prefix: str = "") -> list[FieldViolation]:
    found: list[FieldViolation] = []
    for fld, rules in _checked_fields(message.DESCRIPTOR):
        path = f"{prefix}{fld.name}"
        if fld.is_repeated:
            items = getattr(message, fld.name)
            found += _count_violations(items, rules, path)
            limit = rules.max_items if rules is not None and rules.HasField("max_items") else None
            for i, item in enumerate(items[:limit]):
                found += _value_violations(fld, item, rules, f"{path}[{i}]")
        elif fld.type == FieldDescriptor.TYPE_MESSAGE:
            if message.HasField(fld.name):
                found += _value_violations(fld, getattr(message, fld.name), rules, path)
            elif rules is not None and rules.required:
                found.append(FieldViolation(path, "is required"))
        else:
            found += _value_violations(fld, getattr(message, fld.name), rules, path)
    return found


def _count_violations(items: object, rules: FieldRules | None, path: str) -> list[FieldViolation]:
    if rules is None:
        return []
    count = len(items)  # type: ignore[arg-type]
    low = rules.min_items if rules.HasField("min_items") else 0
    high = rules.max_items if rules.HasField("max_items") else None
    if count < low or (high is not None and count > high):
        return [FieldViolation(path, f"must hold {_span(low, high)} items, got {count}")]
    return []


def _value_violations(
    fld: FieldDescriptor, value: object, rules: FieldRules | None, path: str
) -> list[FieldViolation]:
    if fld.type == FieldDescriptor.TYPE_MESSAGE:
        assert isinstance(value, Message)
        return violations(value, f"{path}.")
    if rules is None:
        return []
    if fld.type == FieldDescriptor.TYPE_STRING:
        assert isinstance(value, str)
        return _string_violations(value, rules, path)
    if fld.type in _INTEGERS:
        assert isinstance(value, int)
        return _integer_violations(value, rules, path)
    return []


def _string_violations(value: str, rules: FieldRules, path: str) -> list[FieldViolation]:
    if rules.required and not value.strip():
        return [FieldViolation(path, "is required")]
    if not value and not rules.required:
        return []  # an optional string left empty is not checked further
    low = rules.min_len if rules.HasField("min_len") else (1 if rules.required else None)
    high = rules.max_len if rules.HasField("max_len") else None
    if (low is not None and len(value) < low) or (high is not None and len(value) > high):
        return [FieldViolation(path, f"must be {_span(low, high)} characters, got {len(value)}")]
    if rules.pattern and not _compiled(rules.pattern).search(value):
        return [FieldViolation(path, f"must match {rules.pattern}, got {value[:32]!r}")]
    return []


def _integer_violations(value: int, rules: FieldRules, path: str) -> list[FieldViolation]:
    if rules.required and value == 0:
        return [FieldViolation(path, "is required and must not be zero")]
    low = rules.gte if rules.HasField("gte") else None
    high = rules.lte if rules.HasField("lte") else None
    if (low is not None and value < low) or (high is not None and value > high):
        return [FieldViolation(path, f"must be {_span(low, high)}, got {value}")]
    return []


def _span(low: int | None, high: int | None) -> str:
    if low is None and high is None:
        return "anything"
    if high is None:
        return f"at least {low}"
    if low is None:
        return f"at most {high}"
    return f"{low} to {high}"


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@cache
def _checked_fields(
    descriptor: Descriptor,
) -> tuple[tuple[FieldDescriptor, FieldRules | None], ...]:
    """The fields worth a look: those with rules, and messages that hold some further down."""
    return tuple(
        (fld, rules_of(fld))
        for fld in descriptor.fields
        if rules_of(fld) is not None or _holds_rules(fld.message_type, frozenset())
    )


def _holds_rules(descriptor: Descriptor | None, seen: frozenset[str]) -> bool:
    if descriptor is None or descriptor.full_name in seen or descriptor.GetOptions().map_entry:
        return False
    inner = seen | {descriptor.full_name}
    return any(
        rules_of(fld) is not None or _holds_rules(fld.message_type, inner)
        for fld in descriptor.fields
    )
