"""The one way to make a synchronous call to another service: a deadline on every call, a
circuit breaker per callee, and the callee's address from a resolver.

Failures that say the callee is unhealthy (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
INTERNAL, UNKNOWN, cancellation) count against the breaker; answers about the request itself
(NOT_FOUND, INVALID_ARGUMENT...) do not. When the breaker is open, calls fail at once with
DependencyUnavailableError (UNAVAILABLE to our caller) naming the callee and the breaker state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, TypeVar

import grpc
from aiobreaker import CircuitBreaker, CircuitBreakerError, CircuitBreakerListener
from aiobreaker.state import CircuitBreakerBaseState
from google.protobuf.message import Message

from services.common.errors import DependencyUnavailableError
from services.common.logs import get_logger

log = get_logger(__name__)
R = TypeVar("R", bound=Message)

UNHEALTHY_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)


class Resolver(Protocol):
    async def resolve(self) -> str:
        """host:port of a live instance."""


@dataclass(frozen=True)
class StaticResolver:
    address: str

    async def resolve(self) -> str:
        return self.address


@dataclass(frozen=True)
class CallPolicy:
    deadline_s: float
    breaker_fail_max: int
    breaker_reset_timeout_s: float


class _CalleeUnhealthyError(Exception):
    """Wraps a gRPC error that should count against the breaker."""

    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        self.error = error
        super().__init__(str(error.details()))


class _TransitionLog(CircuitBreakerListener):  # type: ignore[misc]
    def state_change(
        self, breaker: CircuitBreaker, old: CircuitBreakerBaseState, new: CircuitBreakerBaseState
    ) -> None:
        log.warning(
            "breaker_state_changed",
            callee=breaker.name,
            old=old.state.name if old else None,
            new=new.state.name,
        )


class ServiceClient:
    """Calls one callee's unary RPCs through a breaker, with a deadline."""

    def __init__(self, callee: str, resolver: Resolver, policy: CallPolicy) -> None:
        self.callee = callee
        self._resolver = resolver
        self._policy = policy
        self.breaker = CircuitBreaker(
            fail_max=policy.breaker_fail_max,
            timeout_duration=timedelta(seconds=policy.breaker_reset_timeout_s),
            listeners=[_TransitionLog()],
            name=callee,
        )
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _channel(self, address: str) -> grpc.aio.Channel:
        if address not in self._channels:
            self._channels[address] = grpc.aio.insecure_channel(address)
        return self._channels[address]

    async def call(
        self,
        method: str,
        request: Message,
        response_type: type[R],
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> R:
        """Calls `/package.Service/Method`; raises DependencyUnavailableError when the callee
        is down, slow or its breaker is open, and the callee's own error otherwise."""

        async def attempt() -> R:
            address = await self._resolver.resolve()
            rpc: Callable[..., grpc.aio.UnaryUnaryCall] = self._channel(address).unary_unary(
                method,
                request_serializer=type(request).SerializeToString,
                response_deserializer=response_type.FromString,
            )
            try:
                return await rpc(request, timeout=self._policy.deadline_s, metadata=metadata)  # type: ignore[no-any-return]
            except grpc.aio.AioRpcError as error:
                if error.code() in UNHEALTHY_CODES:
                    raise _CalleeUnhealthyError(error) from error
                raise

        try:
            return await self.breaker.call_async(attempt)  # type: ignore[no-any-return]
        except CircuitBreakerError as error:
            raise DependencyUnavailableError(
                self.callee,
                f"{self.callee} is unavailable: circuit breaker {self.breaker.current_state.name}"
                f" after {self.breaker.fail_counter} failures; retry after"
                f" {self._policy.breaker_reset_timeout_s:g}s",
            ) from error
        except _CalleeUnhealthyError as error:
            raise DependencyUnavailableError(
                self.callee,
                f"{self.callee} did not answer: {error.error.code().name}: {error.error.details()}",
            ) from error

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
