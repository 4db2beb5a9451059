"""Who is calling a service, read once from gRPC metadata, so every servicer decides alike.

The gateway authenticates clients and forwards who they are: the token's subject as
`x-customer-id` and its `roles` claim as `x-customer-roles` (after removing any copy the
client sent, and refusing tokens without a subject). A call that carries neither header
cannot have come through the gateway, so it comes from inside: an operator's grpcurl, a test,
another service. Such an internal caller is trusted with everything. That is safe on loopback
(plaintext, `make up`); off loopback processes speak mutual TLS and peer_trust.py first makes
sure the peer holds a certificate of ours and that only the gateway's carries the headers, and
a call the gateway forwards without them is no internal call (caller_of refuses it).
docs/platform.md records these decisions and their limits.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import grpc

from runtime.errors import PermissionDeniedError, UnauthenticatedError
from runtime.transport_security import GATEWAY_IDENTITY, peer_identity

CUSTOMER_HEADER = "x-customer-id"
ROLES_HEADER = "x-customer-roles"
MAX_CUSTOMER_ID_CHARS = 128
"""Customer ids are 1 to 128 characters wherever they appear (payments' accounts, orders)."""


class Role(StrEnum):
    """Roles a token can grant. Names a token carries that are not here grant nothing."""

    ADMIN = "admin"


@dataclass(frozen=True)
class Caller:
    """A customer with roles, or, with no customer id, a trusted internal caller."""

    customer_id: str | None
    roles: frozenset[Role] = frozenset()

    @property
    def is_internal(self) -> bool:
        return self.customer_id is None

    def require_customer(self) -> str:
        """The customer id, for calls that only make sense on behalf of a customer."""
        if self.customer_id is None:
            raise UnauthenticatedError(
                f"no {CUSTOMER_HEADER} metadata: call through the gateway with a token"
            )
        return self.customer_id

    def has_role(self, role: Role) -> bool:
        return self.is_internal or role in self.roles

    def require_role(self, role: Role) -> None:
        if not self.has_role(role):
            raise PermissionDeniedError(role.value)

    def may_read_customer(self, customer_id: str) -> bool:
        """Whether this caller may see the customer's data. The answer to a `False` is
        NOT_FOUND, not PERMISSION_DENIED: another customer's data does not exist for you."""
        return self.customer_id == customer_id or self.has_role(Role.ADMIN)


INTERNAL = Caller(customer_id=None)


def parse_roles(values: Iterable[str]) -> frozenset[Role]:
    """Roles from `x-customer-roles` values.

    Envoy's claim_to_headers writes a string claim as is but a list claim as the base64 of its
    JSON, so both forms are read; a comma-separated list is accepted too, for operators who set
    the header by hand. Unknown names are dropped, so a malformed header grants nothing.
    """
    names: list[str] = []
    for value in values:
        decoded = _json_list(value)
        names += decoded if decoded is not None else value.split(",")
    known = {role.value: role for role in Role}
    return frozenset(known[n.strip()] for n in names if n.strip() in known)


def _json_list(value: str) -> list[str] | None:
    try:
        text = value.strip()
        parsed = json.loads(base64.b64decode(text + "=" * (-len(text) % 4), validate=True))
    except (binascii.Error, ValueError):
        return None
    if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
        return parsed
    return None


def caller_from_metadata(metadata: Iterable[tuple[str, str | bytes]]) -> Caller:
    """The caller a call's metadata names; see the module docstring for the rules."""
    customers: list[str] = []
    roles: list[str] = []
    for key, value in metadata:
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        if key == CUSTOMER_HEADER:
            customers.append(text.strip())
        elif key == ROLES_HEADER:
            roles.append(text)
    if not customers and not roles:
        return INTERNAL
    if len(customers) != 1 or not customers[0]:
        raise UnauthenticatedError(f"{CUSTOMER_HEADER} metadata must name exactly one customer")
    if len(customers[0]) > MAX_CUSTOMER_ID_CHARS:
        # UNAUTHENTICATED, not INVALID_ARGUMENT: the id is the token's subject, not a field of
        # the request, so the caller's credentials are what cannot be used, and nothing in the
        # message it sent would fix that (as with a blank or doubled customer above).
        raise UnauthenticatedError(
            f"{CUSTOMER_HEADER} metadata must be 1 to {MAX_CUSTOMER_ID_CHARS} characters, "
            f"got {len(customers[0])}: the token's subject cannot be a customer id"
        )
    return Caller(customer_id=customers[0], roles=parse_roles(roles))


def caller_of(context: grpc.aio.ServicerContext) -> Caller:
    """The call's caller. Over mutual TLS, a call from the gateway without a customer is
    refused rather than trusted as internal: the gateway speaks only for customers."""
    caller = caller_from_metadata(context.invocation_metadata() or ())
    if caller.is_internal and peer_identity(context) == GATEWAY_IDENTITY:
        raise UnauthenticatedError(
            f"the gateway forwarded a call without {CUSTOMER_HEADER}: call with a token"
        )
    return caller
