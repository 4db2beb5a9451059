"""The REST channel's own rules: every `google.api.http` binding a published RPC had must still
be there, with the same verb, path and body, or every REST client of it breaks.

No public tool compares HttpRules (buf's breaking rules see options only as bytes), so this
compares them between the published and the proposed descriptor sets, RPC by RPC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2

from registry.contract_index import ContractIndex, Method
from registry.verdict import Channel, Finding


@dataclass(frozen=True)
class Binding:
    """One way an RPC is reached over HTTP."""

    verb: str
    path: str
    body: str
    response_body: str

    def __str__(self) -> str:
        return f"{self.verb} {self.path}"


def _binding(rule: http_pb2.HttpRule) -> Binding | None:
    pattern = rule.WhichOneof("pattern")
    if pattern is None:
        return None
    if pattern == "custom":
        verb, path = rule.custom.kind.upper(), rule.custom.path
    else:
        verb, path = pattern.upper(), getattr(rule, pattern)
    return Binding(verb, path, rule.body, rule.response_body)


def bindings(method: Method) -> list[Binding]:
    """The RPC's HTTP bindings, its main rule first, then its additional_bindings."""
    options = method.proto.options
    if not options.HasExtension(annotations_pb2.http):
        return []
    rule = options.Extensions[annotations_pb2.http]
    found = [_binding(rule), *(_binding(extra) for extra in rule.additional_bindings)]
    return [b for b in found if b is not None]


def http_findings(published: ContractIndex, proposed: ContractIndex) -> list[Finding]:
    findings = []
    for name, method in sorted(published.methods.items()):
        old = bindings(method)
        if not old:
            continue
        new_method = proposed.methods.get(name)
        new = bindings(new_method) if new_method is not None else []
        for binding in old:
            problem = _judge(binding, new, primary=binding is old[0])
            if problem is not None:
                rule, message = problem
                findings.append(
                    Finding(
                        Channel.REST,
                        new_method.file if new_method is not None else method.file,
                        proposed.line_of(name),
                        rule,
                        f"RPC {name}: {message}",
                        element=name,
                    )
                )
    return findings + _routes_taken(published, proposed)


def _shape(binding: Binding) -> tuple[str, str]:
    """What a request must look like to match: the verb and the path with variables blanked,
    since `/v1/orders/{order_id}` and `/v1/orders/{id}` match the same requests."""
    return binding.verb, re.sub(r"\{[^}]*\}", "{}", binding.path)


def _served(index: ContractIndex) -> dict[tuple[str, str], list[Method]]:
    served: dict[tuple[str, str], list[Method]] = {}
    for method in index.methods.values():
        for binding in bindings(method):
            served.setdefault(_shape(binding), []).append(method)
    return served


def _routes_taken(published: ContractIndex, proposed: ContractIndex) -> list[Finding]:
    """HTTP_ROUTE_TAKEN: another RPC now binds a route a published RPC is reached by, so the
    gateway can no longer tell whose request it is (a v2 package keeping v1's paths)."""
    served, before = _served(proposed), _served(published)
    findings = []
    for name, method in sorted(published.methods.items()):
        for binding in bindings(method):
            shape = _shape(binding)
            already = {m.full_name for m in before.get(shape, [])}
            for other in served.get(shape, []):
                if other.full_name in already:
                    continue  # the same RPC, or a clash that was published already
                findings.append(
                    Finding(
                        Channel.REST,
                        other.file,
                        proposed.line_of(other.full_name),
                        "HTTP_ROUTE_TAKEN",
                        f"RPC {name}: {binding} is also bound by RPC {other.full_name}: "
                        "its clients' requests may reach the other",
                        element=name,
                    )
                )
    return findings


def _judge(old: Binding, new: list[Binding], *, primary: bool) -> tuple[str, str] | None:
    """Why `old` is no longer served as it was by `new`; None when it still is."""
    same = [b for b in new if (b.verb, b.path) == (old.verb, old.path)]
    if same:
        if same[0].body != old.body:
            return "HTTP_SAME_BODY", (
                f"{old} changed body from {old.body!r} to {same[0].body!r}: "
                "clients' requests now fill other fields"
            )
        if same[0].response_body != old.response_body:
            return "HTTP_SAME_RESPONSE_BODY", (
                f"{old} changed response_body from {old.response_body!r} "
                f"to {same[0].response_body!r}"
            )
        return None
    if not new:
        return "HTTP_BINDING_NO_DELETE", f"{old} is gone: the RPC or its google.api.http rule"
    moved_verb = [b for b in new if b.path == old.path]
    if moved_verb:
        return "HTTP_SAME_VERB", f"{old} is now {moved_verb[0]}: clients still send {old.verb}"
    if primary and new[0].verb == old.verb:
        return "HTTP_SAME_PATH", f"{old} is now {new[0]}: clients still call {old.path}"
    return "HTTP_BINDING_NO_DELETE", f"{old} is no longer bound (now {', '.join(map(str, new))})"
