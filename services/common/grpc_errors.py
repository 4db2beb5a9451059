"""Maps domain errors to gRPC statuses with rich details, for every servicer at once.

An interceptor wraps each unary handler: it refuses a request that breaks a rule its contract
declares (contract_rules) before the handler runs; DomainError subclasses become their status
code with google.rpc details (BadRequest field violations, ErrorInfo with a reason); anything
unexpected is logged and becomes INTERNAL, so no client ever sees UNKNOWN with a traceback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.common import contract_rules
from services.common.errors import (
    AlreadyExistsError,
    ConcurrencyConflictError,
    DependencyUnavailableError,
    DomainError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from services.common.logs import get_logger

log = get_logger(__name__)
ERROR_DOMAIN = "concord.shop"


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _info(reason: str, **metadata: str) -> any_pb2.Any:
    return _packed(
        error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)
    )


def to_status(error: DomainError) -> status_pb2.Status:
    message = str(error)
    if isinstance(error, InvalidArgumentError):
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in error.violations
            ]
        )
        return status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT, message=message, details=[_packed(bad_request)]
        )
    if isinstance(error, NotFoundError):
        resource = error_details_pb2.ResourceInfo(resource_type=error.kind, resource_name=error.key)
        return status_pb2.Status(
            code=code_pb2.NOT_FOUND, message=message, details=[_packed(resource)]
        )
    if isinstance(error, AlreadyExistsError):
        resource = error_details_pb2.ResourceInfo(resource_type=error.kind, resource_name=error.key)
        return status_pb2.Status(
            code=code_pb2.ALREADY_EXISTS, message=message, details=[_packed(resource)]
        )
    if isinstance(error, FailedPreconditionError):
        return status_pb2.Status(
            code=code_pb2.FAILED_PRECONDITION, message=message, details=[_info(error.reason)]
        )
    if isinstance(error, ConcurrencyConflictError):
        return status_pb2.Status(
            code=code_pb2.ABORTED,
            message=message,
            details=[
                _info(
                    "CONCURRENT_MODIFICATION",
                    stream=error.stream,
                    expected_version=str(error.expected_version),
                    actual_version=str(error.actual_version),
                )
            ],
        )
    if isinstance(error, UnauthenticatedError):
        return status_pb2.Status(code=code_pb2.UNAUTHENTICATED, message=message)
    if isinstance(error, PermissionDeniedError):
        return status_pb2.Status(
            code=code_pb2.PERMISSION_DENIED,
            message=message,
            details=[_info("ROLE_REQUIRED", role=error.role)],
        )
    if isinstance(error, DependencyUnavailableError):
        return status_pb2.Status(
            code=code_pb2.UNAVAILABLE,
            message=message,
            details=[_info("DEPENDENCY_UNAVAILABLE", dependency=error.dependency)],
        )
    return status_pb2.Status(code=code_pb2.INTERNAL, message=message)


class _Undecodable:
    """Stands in for a request whose bytes did not parse, so the handler can answer
    INVALID_ARGUMENT instead of grpc's UNKNOWN."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as error:
            return _Undecodable(error)

    return deserialize


def _wrap_unary(
    behavior: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]], method: str
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Undecodable):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"request is not a valid message: {request.error}"
            )
        try:
            contract_rules.enforce(request)
            return await behavior(request, context)
        except DomainError as error:
            await context.abort_with_status(rpc_status.to_status(to_status(error)))
        except grpc.aio.AioRpcError as error:
            # A callee's answer this service did not turn into a domain error: pass its code on
            # (it says more than INTERNAL would), naming it as the callee's.
            await context.abort(
                error.code(), f"upstream answered {error.code().name}: {error.details()}"
            )
        except (grpc.aio.AbortError, grpc.aio.BaseError):
            raise
        except Exception:
            log.error("unhandled_error", exc_info=True, method=method)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}")

    return handler


class DomainErrorInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        return grpc.unary_unary_rpc_method_handler(
            _wrap_unary(handler.unary_unary, handler_call_details.method),
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
