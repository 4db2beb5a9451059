"""The events channel's rules: JetStream keeps events and commands and consumers replay them for
ever, so a type once published may only grow. No field of it (or of a message it carries) may
be removed, renumbered or retyped, no oneof member may leave its oneof, and no such type may be
removed; buf's WIRE rules allow some of these (a deleted field whose number is reserved).

Events and commands are the top-level messages of the files named `events.proto` and
`commands.proto` of a shop context (`shop/<context>/v<N>/`).
"""

from __future__ import annotations

import re

from google.protobuf import descriptor_pb2

from registry.contract_index import ContractIndex
from registry.verdict import Channel, Finding

EVENT_FILE = re.compile(r"^shop/[a-z][a-z0-9_]*/v\d+[a-z0-9]*/(events|commands)\.proto$")
_LABELS = {descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED: "repeated "}


def message_types(index: ContractIndex) -> list[str]:
    """The event and command types of a set: top-level messages of events/commands.proto."""
    return sorted(
        name
        for name, file in index.message_files.items()
        if EVENT_FILE.match(file) and len(index.declared[name].path) == 2
    )


def _type(f: descriptor_pb2.FieldDescriptorProto) -> str:
    kind = f.type_name.lstrip(".") or descriptor_pb2.FieldDescriptorProto.Type.Name(f.type)
    return _LABELS.get(f.label, "") + kind.removeprefix("TYPE_").lower()


def _oneof(message: descriptor_pb2.DescriptorProto, f: descriptor_pb2.FieldDescriptorProto) -> str:
    if not f.HasField("oneof_index") or f.proto3_optional:
        return ""
    return message.oneof_decl[f.oneof_index].name


def event_findings(published: ContractIndex, proposed: ContractIndex) -> list[Finding]:
    roots = message_types(published)
    findings = []
    for name in sorted(published.carried(roots)):
        if not name.startswith("google.protobuf."):
            what = "event/command type" if name in roots else "message carried by events/commands"
            findings += _message_findings(name, what, published, proposed)
    return findings


def _message_findings(
    name: str, what: str, published: ContractIndex, proposed: ContractIndex
) -> list[Finding]:
    def finding(rule: str, element: str, message: str) -> Finding:
        file = proposed.message_files.get(name, published.message_files[name])
        return Finding(Channel.EVENTS, file, proposed.line_of(element), rule, message, element=name)

    new = proposed.messages.get(name)
    if new is None:
        return [
            finding(
                "EVENT_TYPE_NO_DELETE",
                name,
                f"{what} {name} was removed: stored messages of it can no longer be decoded",
            )
        ]
    old = published.messages[name]
    by_number = {f.number: f for f in new.field}
    by_name = {f.name: f for f in new.field}
    findings = []
    for f in old.field:
        now = by_number.get(f.number)
        if now is None and f.name in by_name:
            findings.append(
                finding(
                    "EVENT_FIELD_SAME_NUMBER",
                    f"{name}.{f.name}",
                    f'field "{f.name}" of {what} {name} was renumbered from {f.number} to '
                    f"{by_name[f.name].number}: stored messages carry it as {f.number}",
                )
            )
        elif now is None:
            findings.append(
                finding(
                    "EVENT_FIELD_NO_DELETE",
                    name,
                    f'field {f.number} "{f.name}" of {what} {name} was removed: '
                    "stored messages still carry it (reserving the number does not help)",
                )
            )
        elif _type(now) != _type(f):
            findings.append(
                finding(
                    "EVENT_FIELD_SAME_TYPE",
                    f"{name}.{now.name}",
                    f'field {f.number} "{f.name}" of {what} {name} changed type from '
                    f"{_type(f)} to {_type(now)}",
                )
            )
        elif _oneof(old, f) and _oneof(old, f) != _oneof(new, now):
            where = f'oneof "{_oneof(new, now)}"' if _oneof(new, now) else "no oneof"
            findings.append(
                finding(
                    "EVENT_FIELD_SAME_ONEOF",
                    f"{name}.{now.name}",
                    f'field {f.number} "{f.name}" of {what} {name} moved from oneof '
                    f'"{_oneof(old, f)}" to {where}: stored messages decode differently',
                )
            )
    return findings
