"""Hypothesis strategies for requests: REST calls from openapi.json, protobuf messages from the
contracts' descriptors, each mixed with junk a hostile client would send.

`json_schema` turns the document's OpenAPI 3.0 dialect (components $refs, `nullable`, proto
formats) into plain JSON Schema, which jsonschema validates answers against and `from_schema`
draws values from. `from_schema` is ours: hypothesis-jsonschema, the library for it, reaches
into Hypothesis internals that current Hypothesis releases no longer have, and the document
uses only a small part of JSON Schema (the keywords tools/openapi/schemas.py emits).
"""

from __future__ import annotations

import json
import string
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

Schema = dict[str, Any]
_KNOWN_FORMATS = {"date-time"}
_MAX_DEPTH = 3

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
"""Any JSON value at all, for bodies and parameters that ignore the document."""

JUNK_TEXT = st.text(max_size=40) | st.sampled_from(
    ["", " ", "-1", "1e999", "NaN", "%00", "../x", "9" * 30, "\u0000", "true", "null", "A" * 5000]
)


def json_schema(document: Schema, schema: Schema, depth: int = 0) -> Schema:
    """The schema with every $ref inlined, `nullable` as a null alternative and formats that
    JSON Schema does not know dropped."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if depth > _MAX_DEPTH:
            return {"type": "object"}
        return json_schema(document, document["components"]["schemas"][name], depth + 1)
    converted: Schema = {}
    for key, value in schema.items():
        if key in ("description", "nullable") or (key == "format" and value not in _KNOWN_FORMATS):
            continue
        if key == "properties":
            converted[key] = {k: json_schema(document, v, depth) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            converted[key] = json_schema(document, value, depth)
        elif key in ("allOf", "anyOf", "oneOf"):
            converted[key] = [json_schema(document, v, depth) for v in value]
        else:
            converted[key] = value
    if schema.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def from_schema(schema: Schema) -> st.SearchStrategy[Any]:
    """Values the schema accepts, for the keywords the generated document uses."""
    if "anyOf" in schema:
        return st.one_of([from_schema(s) for s in schema["anyOf"]])
    if "allOf" in schema:
        return from_schema({k: v for s in schema["allOf"] for k, v in s.items()})
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return _objects(schema)
    if kind == "array":
        return st.lists(
            from_schema(schema.get("items", {})),
            min_size=schema.get("minItems", 0),
            max_size=min(schema.get("maxItems", 5), 5 + schema.get("minItems", 0)),
        )
    if kind == "string":
        return _strings(schema)
    if kind == "integer":
        values = st.integers(schema.get("minimum"), schema.get("maximum"))
        if "not" in schema:
            excluded = schema["not"].get("enum", [])
            values = values.filter(lambda v: v not in excluded)
        return values
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return JSON_VALUES


def _strings(schema: Schema) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if schema.get("format") == "date-time":
        return st.datetimes().map(lambda d: d.isoformat() + "Z")
    if "pattern" in schema:
        return st.from_regex(str(schema["pattern"])).filter(
            lambda s: low <= len(s) and (high is None or len(s) <= high)
        )
    return st.text(min_size=low, max_size=high if high is not None else 40)


@st.composite
def _objects(draw: st.DrawFn, schema: Schema) -> dict[str, Any]:
    required = set(schema.get("required", []))
    value = {}
    for name, sub in schema.get("properties", {}).items():
        if name in required or draw(st.booleans()):
            value[name] = draw(from_schema(sub))
    return value


@st.composite
def rest_calls(draw: st.DrawFn, document: Schema) -> tuple[str, str, Schema, object]:
    """(verb, path with query, operation, body): a call the document describes, or one that is
    off in some way (junk values, missing or unknown fields, a body that is not its schema)."""
    operations = [
        (verb.upper(), path, operation)
        for path, item in sorted(document["paths"].items())
        for verb, operation in sorted(item.items())
    ]
    verb, path, operation = draw(st.sampled_from(operations))
    follow = draw(st.booleans())
    query: list[tuple[str, str]] = []
    for parameter in operation.get("parameters", []):
        schema = json_schema(document, parameter["schema"])
        value = draw(from_schema(schema) if follow else JUNK_TEXT)
        if parameter["in"] == "path":
            path = path.replace("{" + parameter["name"] + "}", _path_segment(value))
        elif parameter["required"] or draw(st.booleans()):
            values = value if isinstance(value, list) else [value]
            query += [(parameter["name"], _query_text(v)) for v in values]
    if draw(st.integers(0, 9)) == 0:
        query.append((draw(st.text(string.ascii_letters, min_size=1, max_size=8)), "1"))
    body: object = None
    if "requestBody" in operation:
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        body = draw(
            from_schema(json_schema(document, schema))
            if follow
            else JSON_VALUES | st.binary(max_size=64)
        )
    if query:
        from urllib.parse import urlencode

        path += "?" + urlencode(query)
    return verb, path, operation, body


def _path_segment(value: object) -> str:
    from urllib.parse import quote

    return quote(value if isinstance(value, str) else json.dumps(value), safe="")


def _query_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


_INTEGER_BOUNDS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _edge_integers(low: int, high: int) -> st.SearchStrategy[int]:
    edges = [v for v in (low, high, -1, 0, 1, 100, 1001, 2**31, 2**53) if low <= v <= high]
    return st.sampled_from(edges) | st.integers(low, high)


def _value(fld: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if fld.type == FieldDescriptor.TYPE_MESSAGE:
        return messages(fld.message_type, depth + 1)
    if fld.type == FieldDescriptor.TYPE_STRING:
        return JUNK_TEXT
    if fld.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if fld.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if fld.type == FieldDescriptor.TYPE_ENUM:
        return st.integers(-3, 20)  # proto3 keeps unknown enum numbers
    if fld.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, width=32 if fld.type == FieldDescriptor.TYPE_FLOAT else 64)
    return _edge_integers(*_INTEGER_BOUNDS[fld.type])


@st.composite
def messages(draw: st.DrawFn, descriptor: Descriptor, depth: int = 0) -> Message:
    """A message of the type with any subset of its fields set to edge or random values."""
    message = GetMessageClass(descriptor)()
    if depth > _MAX_DEPTH:
        return message
    for fld in descriptor.fields:
        if not draw(st.booleans()):
            continue
        if fld.is_repeated:
            if fld.message_type is not None and fld.message_type.GetOptions().map_entry:
                continue
            size = draw(st.sampled_from([1, 2, 5, 51, 150]))
            values = draw(st.lists(_value(fld, depth), min_size=size, max_size=size))
            target = getattr(message, fld.name)
            if fld.type == FieldDescriptor.TYPE_MESSAGE:
                for value in values:
                    target.add().CopyFrom(value)
            else:
                target.extend(values)
        elif fld.type == FieldDescriptor.TYPE_MESSAGE:
            getattr(message, fld.name).CopyFrom(draw(_value(fld, depth)))
        else:
            setattr(message, fld.name, draw(_value(fld, depth)))
    return message


def request_bytes(descriptor: Descriptor) -> st.SearchStrategy[bytes]:
    """A serialized request: a generated message, or bytes that may not parse at all."""
    return messages(descriptor).map(lambda m: m.SerializeToString()) | st.binary(max_size=96)
