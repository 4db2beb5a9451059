"""Statuses a domain error becomes (runtime/grpc_errors.py to_status) stay within what
a default gRPC client accepts (8 KiB of received metadata), however many problems a request
has, and still say what went wrong and how much was left out."""

from __future__ import annotations

import base64

from google.rpc import code_pb2, error_details_pb2, status_pb2

from runtime import grpc_errors
from runtime.errors import (
    AlreadyExistsError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
)
from runtime.grpc_errors import to_status

DEFAULT_CLIENT_METADATA_LIMIT_BYTES = 8 * 1024


def wire_size(status: status_pb2.Status) -> int:
    """Roughly what the status costs in trailing metadata: base64 details, encoded message."""
    return len(base64.b64encode(status.SerializeToString())) + 3 * len(status.message.encode())


def violations_of(status: status_pb2.Status) -> list[error_details_pb2.BadRequest.FieldViolation]:
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    return list(bad_request.field_violations)


def test_150_violations_list_the_first_and_say_how_many_more() -> None:
    error = InvalidArgumentError(
        [FieldViolation(f"product_ids[{i}]", "is required") for i in range(150)]
    )
    status = to_status(error)

    listed = violations_of(status)
    assert status.code == code_pb2.INVALID_ARGUMENT
    assert len(listed) == grpc_errors.MAX_FIELD_VIOLATIONS + 1
    assert [v.field for v in listed[:3]] == ["product_ids[0]", "product_ids[1]", "product_ids[2]"]
    summary = listed[-1]
    assert summary.field == f"product_ids[{grpc_errors.MAX_FIELD_VIOLATIONS}]"
    assert "this and 129 more violations not listed" in summary.description
    assert len(status.message.encode()) <= grpc_errors.MAX_STATUS_MESSAGE_BYTES
    assert wire_size(status) < DEFAULT_CLIENT_METADATA_LIMIT_BYTES - 1024


def test_long_fields_and_descriptions_are_clipped_and_the_bytes_budget_holds() -> None:
    error = InvalidArgumentError(
        [FieldViolation("f" * 1000 + str(i), "é" * 5000) for i in range(15)]
    )
    status = to_status(error)

    listed = violations_of(status)
    assert len(listed) < 15 and "more violations not listed" in listed[-1].description
    assert all(len(v.field) <= grpc_errors.MAX_VIOLATION_FIELD_CHARS for v in listed)
    assert all(len(v.description) <= grpc_errors.MAX_VIOLATION_DESCRIPTION_CHARS for v in listed)
    assert listed[0].description.endswith("(4800 more characters)")
    assert wire_size(status) < DEFAULT_CLIENT_METADATA_LIMIT_BYTES - 1024


def test_a_few_short_violations_are_passed_on_whole() -> None:
    error = InvalidArgumentError([FieldViolation("sku", "is required"), FieldViolation("x", "y")])
    status = to_status(error)
    assert [(v.field, v.description) for v in violations_of(status)] == [
        ("sku", "is required"),
        ("x", "y"),
    ]
    assert status.message == "invalid request: sku: is required; x: y"


def test_resource_names_listing_many_ids_are_cut_but_a_whole_order_fits() -> None:
    order_of_50 = ", ".join(f"prd_{i:060}" for i in range(50))
    whole = error_details_pb2.ResourceInfo()
    assert to_status(NotFoundError("products", order_of_50)).details[0].Unpack(whole)
    assert whole.resource_name == order_of_50

    ids = ", ".join(f"ü{'x' * 60}{i:03}" for i in range(100))
    for error, code in (
        (NotFoundError("products", ids), code_pb2.NOT_FOUND),
        (AlreadyExistsError("product with sku", ids), code_pb2.ALREADY_EXISTS),
    ):
        status = to_status(error)
        resource = error_details_pb2.ResourceInfo()
        assert status.details[0].Unpack(resource)
        assert status.code == code
        assert resource.resource_name.startswith("üx")
        assert len(resource.resource_name.encode()) <= grpc_errors.MAX_RESOURCE_NAME_BYTES
        assert resource.resource_name.endswith(f"(cut from {len(ids.encode())} bytes)")
        assert status.message.endswith(f"(cut from {len(str(error).encode())} bytes)")
        assert wire_size(status) < DEFAULT_CLIENT_METADATA_LIMIT_BYTES - 1024


def test_a_message_is_cut_on_a_character_boundary() -> None:
    message = grpc_errors.capped_message("ü" * 1000)
    assert len(message.encode()) <= grpc_errors.MAX_STATUS_MESSAGE_BYTES
    assert message.startswith("üü") and message.endswith("(cut from 2000 bytes)")
    assert "\ufffd" not in message
