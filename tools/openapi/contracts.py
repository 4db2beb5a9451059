"""The contracts as the generator needs them: types by full name, comments, HTTP bindings.

Reads the FileDescriptorSet Bazel builds (`//proto:descriptors`), which carries imports and
source info, so comments on services, RPCs, messages and fields become descriptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from concord.validate.v1 import rules_pb2
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

# FileDescriptorProto field numbers, as used in SourceCodeInfo.Location.path.
_MESSAGE, _ENUM, _SERVICE = 4, 5, 6
_FIELD, _NESTED_MESSAGE, _NESTED_ENUM, _METHOD = 2, 3, 4, 2
_HTTP_VERBS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class Binding:
    """One google.api.http rule of one RPC: how a REST call maps onto it."""

    service: str
    method: str
    verb: str
    path: str
    body: str
    response_body: str
    request_type: str
    response_type: str
    description: str

    @property
    def rpc(self) -> str:
        return f"{self.service}.{self.method}"


@dataclass
class Contracts:
    messages: dict[str, descriptor_pb2.DescriptorProto] = field(default_factory=dict)
    enums: dict[str, descriptor_pb2.EnumDescriptorProto] = field(default_factory=dict)
    services: dict[str, descriptor_pb2.ServiceDescriptorProto] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Contracts:
        # Importing annotations_pb2 registers the google.api.http extension, so MethodOptions
        # parsed below carry it instead of an unknown field.
        assert annotations_pb2.http is not None
        assert rules_pb2.rules is not None  # and the contract rules on fields
        files = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())
        contracts = cls()
        for file in files.file:
            contracts._add_file(file)
        return contracts

    def _add_file(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        prefix = f".{file.package}" if file.package else ""
        located = {tuple(loc.path): loc.leading_comments for loc in file.source_code_info.location}

        def comment(path: tuple[int, ...]) -> str:
            return " ".join(located.get(path, "").split())

        def add_message(
            msg: descriptor_pb2.DescriptorProto, scope: str, path: tuple[int, ...]
        ) -> None:
            name = f"{scope}.{msg.name}"
            self.messages[name] = msg
            self.comments[name] = comment(path)
            for i, fld in enumerate(msg.field):
                self.comments[f"{name}.{fld.name}"] = comment((*path, _FIELD, i))
            for i, nested in enumerate(msg.nested_type):
                add_message(nested, name, (*path, _NESTED_MESSAGE, i))
            for i, enum in enumerate(msg.enum_type):
                add_enum(enum, name, (*path, _NESTED_ENUM, i))

        def add_enum(
            enum: descriptor_pb2.EnumDescriptorProto, scope: str, path: tuple[int, ...]
        ) -> None:
            name = f"{scope}.{enum.name}"
            self.enums[name] = enum
            self.comments[name] = comment(path)

        for i, msg in enumerate(file.message_type):
            add_message(msg, prefix, (_MESSAGE, i))
        for i, enum in enumerate(file.enum_type):
            add_enum(enum, prefix, (_ENUM, i))
        for i, service in enumerate(file.service):
            name = f"{prefix}.{service.name}"
            self.services[name] = service
            self.comments[name] = comment((_SERVICE, i))
            for j, method in enumerate(service.method):
                self.comments[f"{name}.{method.name}"] = comment((_SERVICE, i, _METHOD, j))

    def bindings(self, service: str) -> list[Binding]:
        """Every HTTP rule of `service` (a full name without the leading dot), in file order."""
        key = f".{service}"
        if key not in self.services:
            raise KeyError(f"service {service} is not in the descriptor set")
        found = []
        for method in self.services[key].method:
            if not method.options.HasExtension(annotations_pb2.http):
                continue
            rule = method.options.Extensions[annotations_pb2.http]
            for each in (rule, *rule.additional_bindings):
                verb, path = _verb_and_path(each)
                found.append(
                    Binding(
                        service=service,
                        method=method.name,
                        verb=verb,
                        path=path,
                        body=each.body,
                        response_body=each.response_body,
                        request_type=method.input_type,
                        response_type=method.output_type,
                        description=self.comments.get(f"{key}.{method.name}", ""),
                    )
                )
        return found

    def annotated_services(self) -> list[str]:
        """Services with at least one HTTP rule, full names without the leading dot."""
        return sorted(
            name[1:]
            for name, service in self.services.items()
            if any(m.options.HasExtension(annotations_pb2.http) for m in service.method)
        )


def _verb_and_path(rule: http_pb2.HttpRule) -> tuple[str, str]:
    for verb in _HTTP_VERBS:
        if getattr(rule, verb):
            return verb, str(getattr(rule, verb))
    if rule.HasField("custom"):
        return rule.custom.kind.lower(), rule.custom.path
    raise ValueError(f"HTTP rule without a pattern: {rule}")
