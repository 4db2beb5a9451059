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

from runtime import contract_rules
from runtime.bus import leader_unavailable
from runtime.errors import (
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
from runtime.logs import get_logger

log = get_logger(__name__)
ERROR_DOMAIN = "concord.shop"

# A status travels in trailing metadata (grpc-message percent-encoded, the details base64 in
# grpc-status-details-bin), and clients refuse received metadata over 8 KiB by default
# (grpc.max_metadata_size): a status over that reaches them as RESOURCE_EXHAUSTED with the
# real error lost. So every status is capped here, whatever raised it: the details and the
# message they repeat stay under 3.8 KiB (5 KiB as base64), the message under 384 bytes
# (1.1 KiB percent-encoded at worst), leaving a kilobyte for every other header.
MAX_FIELD_VIOLATIONS = 20
"""At most this many violations are listed; one more says how many were left out."""
MAX_VIOLATION_FIELD_CHARS = 128
MAX_VIOLATION_DESCRIPTION_CHARS = 200
MAX_DETAILS_BYTES = 2048
"""Budget of the listed violations, serialized."""
MAX_RESOURCE_NAME_BYTES = 3400
"""Enough for orders' largest batch, 50 product ids of 64 ASCII characters, whole: pricing
reads the unknown ids from inventory's NOT_FOUND resource name."""
MAX_STATUS_MESSAGE_BYTES = 384


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _info(reason: str, **metadata: str) -> any_pb2.Any:
    return _packed(
        error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata)
    )


def _clipped(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    left_out = f"... ({len(text) - max_chars} more characters)"
    return text[: max(0, max_chars - len(left_out))] + left_out


def _cut(text: str, max_bytes: int) -> str:
    """`text` cut to `max_bytes` of UTF-8 on a character boundary, saying it was cut."""
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    note = f"... (cut from {len(encoded)} bytes)"
    return encoded[: max_bytes - len(note)].decode(errors="ignore") + note


def capped_message(message: str) -> str:
    """`message` cut to MAX_STATUS_MESSAGE_BYTES of UTF-8, saying it was cut."""
    return _cut(message, MAX_STATUS_MESSAGE_BYTES)


def _bad_request(error: InvalidArgumentError) -> error_details_pb2.BadRequest:
    """The first violations within MAX_FIELD_VIOLATIONS and MAX_DETAILS_BYTES, then one that
    says how many more there were, on the first field left out."""
    bad_request = error_details_pb2.BadRequest()
    for listed, v in enumerate(error.violations):
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=_clipped(v.field, MAX_VIOLATION_FIELD_CHARS),
            description=_clipped(v.description, MAX_VIOLATION_DESCRIPTION_CHARS),
        )
        size = bad_request.ByteSize() + violation.ByteSize()
        if listed >= MAX_FIELD_VIOLATIONS or size > MAX_DETAILS_BYTES:
            left_out = len(error.violations) - listed
            bad_request.field_violations.add(
                field=violation.field,
                description=f"this and {left_out - 1} more violations not listed "
                f"(at most {MAX_FIELD_VIOLATIONS} are); fix those listed and ask again",
            )
            break
        bad_request.field_violations.append(violation)
    return bad_request


def _resource(kind: str, key: str) -> any_pb2.Any:
    return _packed(
        error_details_pb2.ResourceInfo(
            resource_type=_clipped(kind, MAX_VIOLATION_FIELD_CHARS),
            resource_name=_cut(key, MAX_RESOURCE_NAME_BYTES),
        )
    )


def to_status(error: DomainError) -> status_pb2.Status:
    """The status a domain error becomes, within the size a default client accepts."""
    status = _uncapped_status(error)
    status.message = capped_message(status.message)
    return status


def _uncapped_status(error: DomainError) -> status_pb2.Status:
    message = str(error)
    if isinstance(error, InvalidArgumentError):
        return status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT, message=message, details=[_packed(_bad_request(error))]
        )
    if isinstance(error, NotFoundError):
        return status_pb2.Status(
            code=code_pb2.NOT_FOUND, message=message, details=[_resource(error.kind, error.key)]
        )
    if isinstance(error, AlreadyExistsError):
        return status_pb2.Status(
            code=code_pb2.ALREADY_EXISTS,
            message=message,
            details=[_resource(error.kind, error.key)],
        )
    if isinstance(error, FailedPreconditionError):
        return status_pb2.Status(
            code=code_pb2.FAILED_PRECONDITION,
            message=message,
            details=[_info(error.reason, **error.metadata)],
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
            details=[_info(error.reason, dependency=error.dependency)],
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


def _wrap_unary(behavior: UnaryBehavior, method: str) -> UnaryBehavior:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Undecodable):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                capped_message(f"request is not a valid message: {request.error}"),
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
                error.code(),
                capped_message(f"upstream answered {error.code().name}: {error.details()}"),
            )
        except (grpc.aio.AbortError, grpc.aio.BaseError):
            raise
        except Exception as error:
            if leader_unavailable(error):  # JetStream (a KV bucket, a stream) between leaders
                log.warning("messaging_unavailable", method=method, error=repr(error))
                unavailable = DependencyUnavailableError("nats", "JetStream is electing a leader")
                await context.abort_with_status(rpc_status.to_status(to_status(unavailable)))
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
        return with_unary(
            handler,
            _wrap_unary(handler.unary_unary, handler_call_details.method),
            _tolerant(handler.request_deserializer),
        )


UnaryBehavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
"""A unary-unary handler's behaviour: what a server interceptor wraps."""


def with_unary(
    handler: grpc.RpcMethodHandler,
    behavior: UnaryBehavior,
    request_deserializer: Callable[[bytes], Any] | None = None,
) -> grpc.RpcMethodHandler:
    """`handler` with its unary-unary behaviour replaced by `behavior` (and its request
    deserializer, when given), the serializers kept: how each of the platform's server
    interceptors puts its layer around a call."""
    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=request_deserializer or handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def final_code(context: grpc.aio.ServicerContext) -> grpc.StatusCode | None:
    """The status a handler set (or aborted with) on `context`, as a StatusCode; None if it set
    none. grpc.aio reports an abort's code as its integer, a set_code as the enum."""
    code = context.code()
    if code is None or isinstance(code, grpc.StatusCode):
        return code
    return next((c for c in grpc.StatusCode if c.value[0] == code), None)
