"""Who a call comes from, as every service reads it from metadata (runtime/caller.py),
and the status a refusal becomes."""

from __future__ import annotations

import base64
import json

import pytest
from google.rpc import code_pb2, error_details_pb2

from runtime.caller import INTERNAL, Caller, Role, caller_from_metadata, parse_roles
from runtime.errors import PermissionDeniedError, UnauthenticatedError
from runtime.grpc_errors import to_status
from tools.runner.tokens import KNOWN_ROLES


def envoy_list_claim(values: list[str]) -> str:
    """What Envoy's claim_to_headers writes for a list claim: base64 of its JSON."""
    return base64.b64encode(json.dumps(values).encode()).decode()


def test_a_call_without_identity_metadata_is_a_trusted_internal_caller() -> None:
    caller = caller_from_metadata([("x-request-id", "r1"), ("user-agent", "grpcurl")])

    assert caller == INTERNAL
    assert caller.has_role(Role.ADMIN)
    assert caller.may_read_customer("anyone")


def test_an_internal_caller_is_no_customer() -> None:
    with pytest.raises(UnauthenticatedError):
        INTERNAL.require_customer()


def test_the_gateway_forwarded_customer_has_only_the_roles_of_the_token() -> None:
    customer = caller_from_metadata([("x-customer-id", "alice"), ("x-customer-roles", "W10=")])
    admin = caller_from_metadata(
        [("x-customer-id", "ops"), ("x-customer-roles", envoy_list_claim(["admin", "support"]))]
    )

    assert customer == Caller("alice", frozenset())
    assert admin == Caller("ops", frozenset({Role.ADMIN}))
    assert customer.may_read_customer("alice")
    assert not customer.may_read_customer("bob")
    assert admin.may_read_customer("bob")


@pytest.mark.parametrize(
    ("header", "roles"),
    [
        ("admin", {Role.ADMIN}),  # a string claim, as Envoy forwards it
        ("support, admin", {Role.ADMIN}),  # set by hand
        (envoy_list_claim(["root"]), set()),
        ("YWRtaW4=", set()),  # base64 of "admin", not of a JSON list
        ("", set()),
    ],
)
def test_roles_header_forms_and_unknown_names_grant_nothing_extra(
    header: str, roles: set[Role]
) -> None:
    assert parse_roles([header]) == roles


def test_a_customer_without_the_role_is_denied() -> None:
    with pytest.raises(PermissionDeniedError) as denied:
        Caller("alice").require_role(Role.ADMIN)

    status = to_status(denied.value)
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert status.code == code_pb2.PERMISSION_DENIED
    assert (info.reason, dict(info.metadata)) == ("ROLE_REQUIRED", {"role": "admin"})


@pytest.mark.parametrize(
    "metadata",
    [
        [("x-customer-roles", "admin")],  # roles, but no customer
        [("x-customer-id", "  ")],
        [("x-customer-id", "alice"), ("x-customer-id", "bob")],
    ],
)
def test_identity_metadata_that_names_no_single_customer_is_unauthenticated(
    metadata: list[tuple[str, str]],
) -> None:
    with pytest.raises(UnauthenticatedError):
        caller_from_metadata(metadata)


def test_the_token_command_offers_exactly_the_roles_services_know() -> None:
    assert set(KNOWN_ROLES) == {role.value for role in Role}


def test_a_customer_id_of_1_to_128_characters_is_read_and_a_longer_one_is_unauthenticated() -> None:
    assert caller_from_metadata([("x-customer-id", "c" * 128)]).customer_id == "c" * 128
    with pytest.raises(UnauthenticatedError) as refused:
        caller_from_metadata([("x-customer-id", "c" * 5000)])

    status = to_status(refused.value)
    assert status.code == code_pb2.UNAUTHENTICATED
    assert "1 to 128 characters, got 5000" in status.message
