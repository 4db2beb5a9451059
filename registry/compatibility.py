"""Is a proposed contract compatible with the published one? Judged per channel, because each
breaks differently (docs/contracts.md, "Channels"):

- gRPC: binary wire compatibility, buf's WIRE rules;
- REST through the gateway: JSON names, buf's WIRE_JSON rules, and the google.api.http rules
  (registry/http_rules.py);
- events and commands on JetStream: types only grow (registry/event_rules.py).

buf runs once, with WIRE and WIRE_JSON together; each finding goes to the channels whose
category holds its rule. Every finding then names the catalogue's processes that consume what
it breaks (runtime/catalogue.py, `consumes`).

`compatibility(published_image, proposed_image)` is the one entry point: the contract registry
calls it on check and publish, and anything else in the registry may too.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from registry.breaking import BreakingCheck, BufFinding
from registry.contract_index import ContractIndex
from registry.event_rules import event_findings
from registry.http_rules import http_findings
from registry.settings import RegistrySettings
from registry.verdict import Channel, ChannelVerdict, Finding, Verdict
from runtime import catalogue

WIRE_ONLY = frozenset({"FIELD_WIRE_COMPATIBLE_CARDINALITY", "FIELD_WIRE_COMPATIBLE_TYPE"})
"""Rules of buf's WIRE category that WIRE_JSON replaces with stricter ones: gRPC only."""
JSON_ONLY = frozenset(
    {
        "ENUM_SAME_JSON_FORMAT",
        "ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED",
        "ENUM_VALUE_SAME_NAME",
        "FIELD_NO_DELETE_UNLESS_NAME_RESERVED",
        "FIELD_SAME_JSON_NAME",
        "FIELD_SAME_NAME",
        "FIELD_WIRE_JSON_COMPATIBLE_CARDINALITY",
        "FIELD_WIRE_JSON_COMPATIBLE_TYPE",
        "MESSAGE_SAME_JSON_FORMAT",
    }
)
"""Rules WIRE_JSON adds to WIRE (`buf config ls-breaking-rules`, buf 1.75): REST only. Every
other rule of the two categories is in both, so it breaks gRPC and REST alike."""


def default_check() -> BreakingCheck:
    """buf as the registry's settings name it, with a cache in the temporary folder."""
    settings = RegistrySettings.from_env()
    cache = Path(tempfile.gettempdir()) / "concord-buf-cache"
    return BreakingCheck(settings.buf_path, settings.buf_timeout_s, cache)


async def compatibility(
    published_image: bytes,
    proposed_image: bytes,
    buf: BreakingCheck | None = None,
    processes: Sequence[catalogue.Process] = catalogue.CATALOGUE,
) -> Verdict:
    """The verdict on `proposed_image` for clients of `published_image`, per channel. Both are
    serialized FileDescriptorSets (buf images) with their imports; line numbers come from the
    proposed one's source info, when it has some."""
    published = ContractIndex.parse(published_image)
    proposed = ContractIndex.parse(proposed_image)
    found = await (buf or default_check()).findings(proposed_image, published_image)
    findings = [
        *(f for b in found for f in _channels(b, proposed)),
        *http_findings(published, proposed),
        *event_findings(published, proposed),
    ]
    record = ConsumerRecord(published, processes)
    judged = [dataclasses.replace(f, consumers=record.broken_by(f, published)) for f in findings]
    return Verdict(
        tuple(
            ChannelVerdict(channel, tuple(f for f in judged if f.channel == channel))
            for channel in Channel
        )
    )


def _channels(found: BufFinding, proposed: ContractIndex) -> list[Finding]:
    if found.rule in JSON_ONLY:
        channels = [Channel.REST]
    elif found.rule in WIRE_ONLY:
        channels = [Channel.GRPC]
    else:
        channels = [Channel.GRPC, Channel.REST]
    element = proposed.element_at(found.path, found.line)
    return [
        Finding(channel, found.path, found.line, found.rule, found.message, element=element)
        for channel in channels
    ]


class ConsumerRecord:
    """What each process consumes, as the full names a finding can point at: for a call, the
    method, its service and every message its request and response carry; for an event or
    command, the type and every message it carries."""

    def __init__(self, published: ContractIndex, processes: Sequence[catalogue.Process]) -> None:
        self._calls: dict[str, set[str]] = {}
        self._messages: dict[str, set[str]] = {}
        for p in processes:
            calls: set[str] = set()
            for call in p.consumes.calls:
                method = published.methods.get(call)
                calls |= {call, call.rpartition(".")[0]}
                if method is not None:
                    io = (method.proto.input_type, method.proto.output_type)
                    calls |= published.carried(t.lstrip(".") for t in io)
            self._calls[p.name] = calls
            self._messages[p.name] = published.carried(p.consumes.messages)
        self._methods = {p.name: p.consumes.calls for p in processes}

    def broken_by(self, finding: Finding, published: ContractIndex) -> tuple[str, ...]:
        if finding.channel is Channel.REST:
            return ()  # REST clients are outside the catalogue
        consumed = self._calls if finding.channel is Channel.GRPC else self._messages
        if finding.element:  # a field's finding breaks its message, and so on outwards
            parts = finding.element.split(".")
            elements = {".".join(parts[:n]) for n in range(1, len(parts) + 1)}
        else:
            elements = published.elements_of(finding.file)
        broken = []
        for name, uses in consumed.items():
            hit = elements & uses
            if finding.channel is Channel.GRPC and hit and hit <= self._services():
                hit = {h for h in hit if self._names_a_called_method(name, finding.message)}
            if hit:
                broken.append(name)
        return tuple(sorted(broken))

    def _services(self) -> set[str]:
        return {m.rpartition(".")[0] for calls in self._methods.values() for m in calls}

    def _names_a_called_method(self, process: str, message: str) -> bool:
        """A finding on a whole service (an RPC deleted) breaks a caller only when it is about
        one of the methods it calls; buf quotes the method's name."""
        quoted = set(re.findall(r'"([^"]+)"', message))
        return any(call.rpartition(".")[2] in quoted for call in self._methods[process])
