"""Real gRPC channels to the services under test, and a way to read rich error details."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

CALL_TIMEOUT_S = 10.0


@asynccontextmanager
async def channel(address: str) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(address) as ch:
        yield ch


def field_violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The google.rpc.BadRequest field violations carried by an INVALID_ARGUMENT error."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    violations: dict[str, str] = {}
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            for v in bad_request.field_violations:
                violations[v.field] = v.description
    return violations
