"""One descriptor set, indexed for the compatibility rules: every message, field, service and
method by full name, where each sits in the sources (when the set carries source info), and
which messages a message carries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from google.protobuf import descriptor_pb2

_MESSAGE, _NESTED, _FIELD, _SERVICE, _METHOD = 4, 3, 2, 6, 2
"""Field numbers of FileDescriptorProto / DescriptorProto / ServiceDescriptorProto that make up
a source path (google/protobuf/descriptor.proto)."""


@dataclass(frozen=True)
class Declared:
    """Where an element is declared: its file and its source path inside it."""

    file: str
    path: tuple[int, ...]


@dataclass(frozen=True)
class Method:
    full_name: str
    service: str
    proto: descriptor_pb2.MethodDescriptorProto
    file: str


@dataclass
class ContractIndex:
    messages: dict[str, descriptor_pb2.DescriptorProto] = field(default_factory=dict)
    message_files: dict[str, str] = field(default_factory=dict)
    methods: dict[str, Method] = field(default_factory=dict)
    declared: dict[str, Declared] = field(default_factory=dict)
    lines: dict[Declared, int] = field(default_factory=dict)
    """1-based first line of each element, when the set has source info."""
    spans: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)
    """Per file, (first line, last line, full name) of every message, service and method."""

    @classmethod
    def parse(cls, raw: bytes) -> ContractIndex:
        index = cls()
        for file in descriptor_pb2.FileDescriptorSet.FromString(raw).file:
            index._add_file(file)
        return index

    def _add_file(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        prefix = f"{file.package}." if file.package else ""
        for i, message in enumerate(file.message_type):
            self._add_message(file.name, prefix + message.name, message, (_MESSAGE, i))
        for i, service in enumerate(file.service):
            service_name = prefix + service.name
            self.declared[service_name] = Declared(file.name, (_SERVICE, i))
            for j, method in enumerate(service.method):
                name = f"{service_name}.{method.name}"
                self.methods[name] = Method(name, service_name, method, file.name)
                self.declared[name] = Declared(file.name, (_SERVICE, i, _METHOD, j))
        spans = self.spans.setdefault(file.name, [])
        by_path = {d.path: name for name, d in self.declared.items() if d.file == file.name}
        for location in file.source_code_info.location:
            path = tuple(location.path)
            span = list(location.span)
            first, last = span[0] + 1, (span[2] if len(span) == 4 else span[0]) + 1
            self.lines[Declared(file.name, path)] = first
            if path in by_path:
                spans.append((first, last, by_path[path]))

    def _add_message(
        self, file: str, name: str, message: descriptor_pb2.DescriptorProto, path: tuple[int, ...]
    ) -> None:
        self.messages[name] = message
        self.message_files[name] = file
        self.declared[name] = Declared(file, path)
        for k, f in enumerate(message.field):
            self.declared[f"{name}.{f.name}"] = Declared(file, (*path, _FIELD, k))
        for j, nested in enumerate(message.nested_type):
            self._add_message(file, f"{name}.{nested.name}", nested, (*path, _NESTED, j))

    def line_of(self, full_name: str) -> int:
        """The first line of `full_name`, else of the nearest enclosing element still declared;
        0 when none is (or the set has no source info)."""
        name = full_name
        while name:
            declared = self.declared.get(name)
            if declared is not None:
                return self.lines.get(declared, 0)
            name = name.rpartition(".")[0]
        return 0

    def element_at(self, file: str, line: int) -> str | None:
        """The innermost message, service or method whose source spans `line` of `file`."""
        inside = [
            (last - first, name)
            for first, last, name in self.spans.get(file, [])
            if first <= line <= last
        ]
        return min(inside)[1] if inside else None

    def elements_of(self, file: str) -> set[str]:
        return {name for name, d in self.declared.items() if d.file == file}

    def carried(self, roots: Iterable[str]) -> set[str]:
        """`roots` and every message reachable from them through fields, transitively."""
        seen: set[str] = set()
        pending = [r for r in roots if r in self.messages]
        while pending:
            name = pending.pop()
            if name in seen:
                continue
            seen.add(name)
            for f in self.messages[name].field:
                target = f.type_name.lstrip(".")
                if target in self.messages and target not in seen:
                    pending.append(target)
        return seen
