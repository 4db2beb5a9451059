"""The OpenAPI 3 document of the gateway: one operation per google.api.http rule.

Paths, parameters and bodies follow the rules the transcoder applies: path variables bind
request fields, `body: "*"` takes the rest of the request as JSON, and every other field of a
bodiless request is a query parameter.
"""

from __future__ import annotations

import re
from typing import Any

from google.protobuf.descriptor_pb2 import FieldDescriptorProto as FieldProto

from tools.openapi.contracts import Binding, Contracts
from tools.openapi.schemas import (
    STATUS_SCHEMA,
    WELL_KNOWN,
    Schema,
    SchemaBuilder,
    is_required,
    ref,
)

_VARIABLE = re.compile(r"\{([^}=]+)(=[^}]*)?\}")
_MAX_QUERY_DEPTH = 3


def camel(field_path: str) -> str:
    """order_id -> orderId, per dotted segment, as proto3 JSON names fields."""
    return ".".join(
        re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), part) for part in field_path.split(".")
    )


def path_fields(template: str) -> list[str]:
    """The request fields a path template binds, e.g. ["order_id"]."""
    return [m.group(1) for m in _VARIABLE.finditer(template)]


def openapi_path(template: str) -> str:
    """/v1/orders/{order_id}:cancel -> /v1/orders/{orderId}:cancel"""
    return _VARIABLE.sub(lambda m: "{" + camel(m.group(1)) + "}", template)


def operation_id(binding: Binding, index: int) -> str:
    short = binding.service.rsplit(".", 1)[-1]
    suffix = f"_{index}" if index else ""
    return f"{short}_{binding.method}{suffix}"


class DocumentBuilder:
    def __init__(self, contracts: Contracts) -> None:
        self.contracts = contracts
        self.schemas = SchemaBuilder(contracts)

    def operation(self, binding: Binding, index: int) -> dict[str, Any]:
        bound = path_fields(binding.path)
        request = self.contracts.messages[binding.request_type]
        by_name = {f.name: f for f in request.field}
        parameters = [
            {
                "name": camel(f),
                "in": "path",
                "required": True,
                "schema": (
                    self.schemas.single_schema(by_name[f]) if f in by_name else {"type": "string"}
                ),
            }
            for f in bound
        ]
        operation: dict[str, Any] = {
            "operationId": operation_id(binding, index),
            "tags": [binding.service.rsplit(".", 1)[-1]],
            "description": binding.description,
            "x-grpc-method": f"/{binding.service}/{binding.method}",
        }
        if binding.body == "*":
            body = self.schemas.message_schema(binding.request_type, frozenset(bound))
            operation["requestBody"] = _json_body(body)
        else:
            if binding.body:
                body_field = next(f for f in request.field if f.name == binding.body)
                operation["requestBody"] = _json_body(self.schemas.single_schema(body_field))
            skip = {*bound, binding.body}
            for fld in request.field:
                if fld.name not in skip:
                    parameters += self.query_parameters(binding.request_type, fld, "", 0)
        if parameters:
            operation["parameters"] = parameters
        operation["responses"] = {
            "200": {"description": "OK", **_json_body(self.response_schema(binding))},
            **error_responses(has_body="requestBody" in operation),
        }
        return operation

    def response_schema(self, binding: Binding) -> Schema:
        if not binding.response_body:
            return self.schemas.message_ref(binding.response_type)
        response = self.contracts.messages[binding.response_type]
        body_field = next(f for f in response.field if f.name == binding.response_body)
        return self.schemas.single_schema(body_field)

    def query_parameters(
        self, owner: str, fld: FieldProto, prefix: str, depth: int
    ) -> list[dict[str, Any]]:
        """Scalars, enums and well-known types are one parameter; messages are flattened."""
        name = f"{prefix}{fld.json_name}"
        is_message = fld.type == FieldProto.TYPE_MESSAGE and fld.type_name not in WELL_KNOWN
        if is_message and fld.label != FieldProto.LABEL_REPEATED:
            if depth >= _MAX_QUERY_DEPTH:
                return []
            nested = self.contracts.messages[fld.type_name]
            return [
                p
                for sub in nested.field
                for p in self.query_parameters(fld.type_name, sub, f"{name}.", depth + 1)
            ]
        if is_message:
            return []  # repeated messages cannot be written as query parameters
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": is_required(fld),
            "schema": self.schemas.field_schema(owner, fld),
        }
        if fld.label == FieldProto.LABEL_REPEATED:
            parameter.update(style="form", explode=True)
        return [parameter]

    def build(self, services: list[str], title: str, server_url: str) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {"/healthz": {"get": _HEALTH}}
        for service in services:
            seen: dict[str, int] = {}
            for binding in self.contracts.bindings(service):
                index = seen.get(binding.method, 0)
                seen[binding.method] = index + 1
                item = paths.setdefault(openapi_path(binding.path), {})
                item[binding.verb] = self.operation(binding, index)
        self.schemas.components["google.rpc.Status"] = STATUS_SCHEMA
        return {
            "openapi": "3.0.3",
            "info": {
                "title": title,
                "version": "v1",
                "description": "Generated from proto/ by tools/openapi; do not edit.",
            },
            "servers": [{"url": server_url}],
            "security": [{"bearerAuth": []}],
            "tags": [
                {"name": s.rsplit(".", 1)[-1], "description": self._comment(s)} for s in services
            ],
            "paths": dict(sorted(paths.items())),
            "components": {
                "securitySchemes": {
                    "bearerAuth": {
                        "type": "http",
                        "scheme": "bearer",
                        "bearerFormat": "JWT",
                        "description": "A JWT in the Authorization header only (never the "
                        "query string); the scheme is case-insensitive; `exp` is required and "
                        "at most 12 hours after `iat`. Its subject is the customer.",
                    }
                },
                "schemas": dict(sorted(self.schemas.components.items())),
            },
        }

    def _comment(self, service: str) -> str:
        return self.contracts.comments.get(f".{service}", "")


# What each error status means; every error body is a google.rpc.Status as JSON, from a service
# (its gRPC code mapped to HTTP by the transcoder) or from Envoy itself (docs/gateway.md).
ERROR_STATUSES: dict[str, str] = {
    "400": "The request breaks a rule of its contract (details name each field), its JSON does "
    "not parse, or the state does not allow it (FAILED_PRECONDITION).",
    "401": "No token, or a token that is not valid, expired or without a subject.",
    "403": "The token's roles do not allow this operation.",
    "404": "No such resource for this customer, or no such route.",
    "409": "The resource already exists, or a concurrent change came first (ABORTED).",
    "413": "The request body is larger than the gateway accepts.",
    "431": "Too many request headers, or headers too large.",
    "429": "Too many requests; retry after the `retry-after` header's seconds.",
    "503": "A service this call needs is unavailable or its breaker is open; retry later.",
    "504": "The call did not finish within the gateway's deadline.",
}


def error_responses(*, has_body: bool) -> dict[str, Any]:
    return {
        code: {"description": text, **_json_body(ref("google.rpc.Status"))}
        for code, text in ERROR_STATUSES.items()
        if has_body or code != "413"
    }


def _json_body(schema: Schema) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


_HEALTH: dict[str, Any] = {
    "operationId": "Gateway_Health",
    "tags": ["Gateway"],
    "description": "Answered by Envoy itself; needs no token.",
    "security": [],
    "responses": {
        "200": {
            "description": "The gateway is up.",
            **_json_body({"type": "object", "properties": {"status": {"type": "string"}}}),
        },
        "405": {
            "description": "Only GET and HEAD; the `allow` header says so.",
            **_json_body(ref("google.rpc.Status")),
        },
    },
}
