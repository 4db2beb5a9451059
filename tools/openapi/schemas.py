"""Protobuf types as OpenAPI 3 schemas, following the proto3 JSON mapping Envoy prints.

Field names are lowerCamelCase (json_name), enums are their value names, 64-bit integers are
strings, Timestamps RFC 3339 strings: exactly what the transcoder's print_options produce.

A field's contract rules (`concord.validate.v1.rules`, enforced by the services through
runtime/contract_rules.py) become JSON Schema keywords here, so the document refuses
exactly what the services refuse. A 64-bit integer whose rules bound it within JSON's exact
integer range (±2^53) is published as a JSON integer with its bounds, which the transcoder
accepts as readily as a string; an unbounded one stays a string.
"""

from __future__ import annotations

from typing import Any

from concord.validate.v1 import rules_pb2
from google.protobuf.descriptor_pb2 import FieldDescriptorProto as FieldProto

from tools.openapi.contracts import Contracts

Schema = dict[str, Any]


_SCALARS: dict[int, Schema] = {
    FieldProto.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldProto.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldProto.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldProto.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldProto.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldProto.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldProto.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldProto.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldProto.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldProto.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FieldProto.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldProto.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FieldProto.TYPE_BOOL: {"type": "boolean"},
    FieldProto.TYPE_STRING: {"type": "string"},
    FieldProto.TYPE_BYTES: {"type": "string", "format": "byte"},
}

# Well-known types have their own JSON forms.
WELL_KNOWN: dict[str, Schema] = {
    ".google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    ".google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?s$"},
    ".google.protobuf.FieldMask": {"type": "string"},
    ".google.protobuf.Empty": {"type": "object"},
    ".google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    ".google.protobuf.Value": {},
    ".google.protobuf.ListValue": {"type": "array", "items": {}},
    ".google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
        "additionalProperties": True,
    },
    ".google.protobuf.StringValue": {"type": "string", "nullable": True},
    ".google.protobuf.BoolValue": {"type": "boolean", "nullable": True},
    ".google.protobuf.Int32Value": {"type": "integer", "format": "int32", "nullable": True},
    ".google.protobuf.Int64Value": {"type": "string", "format": "int64", "nullable": True},
    ".google.protobuf.DoubleValue": {"type": "number", "format": "double", "nullable": True},
}

_INT64_TYPES = frozenset(
    {
        FieldProto.TYPE_INT64,
        FieldProto.TYPE_SINT64,
        FieldProto.TYPE_SFIXED64,
        FieldProto.TYPE_UINT64,
        FieldProto.TYPE_FIXED64,
    }
)
_INTEGER_TYPES = _INT64_TYPES | {
    FieldProto.TYPE_INT32,
    FieldProto.TYPE_SINT32,
    FieldProto.TYPE_SFIXED32,
    FieldProto.TYPE_UINT32,
    FieldProto.TYPE_FIXED32,
}
_JSON_SAFE_INTEGER = 2**53 - 1
_NOT_BLANK = r"\S"

# Every error body, from a service or from Envoy itself.
STATUS_SCHEMA: Schema = {
    "type": "object",
    "description": "google.rpc.Status: a gRPC status code, a message and typed details.",
    "properties": {
        "code": {"type": "integer", "format": "int32", "description": "google.rpc.Code"},
        "message": {"type": "string"},
        "details": {"type": "array", "items": WELL_KNOWN[".google.protobuf.Any"]},
    },
    "required": ["code", "message"],
}


def rules_of(fld: FieldProto) -> rules_pb2.FieldRules | None:
    """The field's contract rules, or None when it declares none."""
    if not fld.options.HasExtension(rules_pb2.rules):
        return None
    return fld.options.Extensions[rules_pb2.rules]


def is_required(fld: FieldProto) -> bool:
    """A client must send the field: its rules refuse the value an omitted field takes."""
    rules = rules_of(fld)
    if rules is None:
        return False
    if fld.label == FieldProto.LABEL_REPEATED:
        return rules.min_items > 0
    return rules.required


def component_name(full_name: str) -> str:
    return full_name.lstrip(".")


def ref(full_name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{component_name(full_name)}"}


class SchemaBuilder:
    """Builds component schemas on demand and remembers every type it referenced."""

    def __init__(self, contracts: Contracts) -> None:
        self.contracts = contracts
        self.components: dict[str, Schema] = {}

    def message_ref(self, full_name: str) -> Schema:
        if full_name in WELL_KNOWN:
            return dict(WELL_KNOWN[full_name])
        name = component_name(full_name)
        if name not in self.components:
            self.components[name] = {}  # placeholder: recursive types terminate
            self.components[name] = self.message_schema(full_name)
        return ref(full_name)

    def message_schema(self, full_name: str, exclude: frozenset[str] = frozenset()) -> Schema:
        """An object schema for the message; `exclude` drops fields bound elsewhere (path)."""
        message = self.contracts.messages[full_name]
        properties = {
            f.json_name: self.field_schema(full_name, f)
            for f in message.field
            if f.name not in exclude
        }
        schema: Schema = {"type": "object", "properties": properties}
        required = [f.json_name for f in message.field if f.name not in exclude and is_required(f)]
        if required:
            schema["required"] = required
        description = self.contracts.comments.get(full_name)
        if description:
            schema["description"] = description
        return schema

    def field_schema(self, owner: str, fld: FieldProto) -> Schema:
        if fld.label == FieldProto.LABEL_REPEATED and self._is_map(fld):
            entry = self.contracts.messages[fld.type_name]
            schema: Schema = {
                "type": "object",
                "additionalProperties": self.field_schema(fld.type_name, entry.field[1]),
            }
        elif fld.label == FieldProto.LABEL_REPEATED:
            schema = {"type": "array", "items": self.single_schema(fld)}
            rules = rules_of(fld)
            if rules is not None and rules.HasField("min_items"):
                schema["minItems"] = rules.min_items
            if rules is not None and rules.HasField("max_items"):
                schema["maxItems"] = rules.max_items
        else:
            schema = self.single_schema(fld)
            if fld.type == FieldProto.TYPE_MESSAGE and not is_required(fld):
                # proto3 JSON reads null as "not set" for a message field.
                schema = (
                    {"allOf": [schema], "nullable": True}
                    if "$ref" in schema
                    else {**schema, "nullable": True}
                )
        description = self.contracts.comments.get(f"{owner}.{fld.name}")
        if description:
            # Siblings of $ref are ignored in OpenAPI 3.0, so wrap a reference to describe it.
            schema = (
                {"allOf": [schema], "description": description}
                if "$ref" in schema
                else {
                    **schema,
                    "description": description,
                }
            )
        return schema

    def single_schema(self, fld: FieldProto) -> Schema:
        """One value of the field (an item, if repeated), with its rules."""
        if fld.type == FieldProto.TYPE_MESSAGE:
            return self.message_ref(fld.type_name)
        if fld.type == FieldProto.TYPE_ENUM:
            return self.enum_ref(fld.type_name)
        schema = dict(_SCALARS[fld.type])
        rules = rules_of(fld)
        if rules is None:
            return schema
        if fld.type == FieldProto.TYPE_STRING:
            return {**schema, **_string_keywords(rules)}
        if fld.type in _INTEGER_TYPES:
            return _integer_schema(schema, fld.type, rules)
        return schema

    def enum_ref(self, full_name: str) -> Schema:
        name = component_name(full_name)
        if name not in self.components:
            enum = self.contracts.enums[full_name]
            schema: Schema = {"type": "string", "enum": [v.name for v in enum.value]}
            description = self.contracts.comments.get(full_name)
            if description:
                schema["description"] = description
            self.components[name] = schema
        return ref(full_name)

    def _is_map(self, fld: FieldProto) -> bool:
        entry = self.contracts.messages.get(fld.type_name)
        return entry is not None and entry.options.map_entry


def _string_keywords(rules: rules_pb2.FieldRules) -> Schema:
    keywords: Schema = {}
    if rules.HasField("min_len") or rules.required:
        keywords["minLength"] = rules.min_len if rules.HasField("min_len") else 1
    if rules.HasField("max_len"):
        keywords["maxLength"] = rules.max_len
    if rules.pattern:
        keywords["pattern"] = rules.pattern
    elif rules.required:
        keywords["pattern"] = _NOT_BLANK
    return keywords


def _integer_schema(schema: Schema, kind: int, rules: rules_pb2.FieldRules) -> Schema:
    low = rules.gte if rules.HasField("gte") else None
    high = rules.lte if rules.HasField("lte") else None
    bounded = (
        low is not None
        and high is not None
        and low >= -_JSON_SAFE_INTEGER
        and high <= _JSON_SAFE_INTEGER
    )
    if kind in _INT64_TYPES and not bounded:
        return schema  # stays a string: a JSON number could not carry it exactly
    keywords: Schema = {"type": "integer", "format": schema.get("format", "int64")}
    if low is not None:
        keywords["minimum"] = low
    if high is not None:
        keywords["maximum"] = high
    if rules.required:
        keywords["not"] = {"enum": [0]}
    return keywords
