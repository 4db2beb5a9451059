"""Protobuf types as OpenAPI 3 schemas, following the proto3 JSON mapping Envoy prints.

Field names are lowerCamelCase (json_name), enums are their value names, 64-bit integers are
strings, Timestamps RFC 3339 strings: exactly what the transcoder's print_options produce.
"""

from __future__ import annotations

from typing import Any

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
        else:
            schema = self.single_schema(fld)
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
        if fld.type == FieldProto.TYPE_MESSAGE:
            return self.message_ref(fld.type_name)
        if fld.type == FieldProto.TYPE_ENUM:
            return self.enum_ref(fld.type_name)
        return dict(_SCALARS[fld.type])

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
