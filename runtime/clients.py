"""The one way to make a synchronous call to another service: a deadline on every call, a
circuit breaker per callee (breaker.py), retries with jittered backoff only for idempotent
calls, and the callee's address from a resolver. Calls go through the callee's generated stub
(`client.call(lambda inventory: inventory.BatchGetProducts, request)`), never a method-path
string, so a renamed RPC breaks the build rather than a call at run time.

Failures that say the callee is unhealthy (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
INTERNAL, UNKNOWN, cancellation) count against the breaker and become DependencyUnavailableError
(UNAVAILABLE to our own caller, naming the callee); answers about the request itself
(NOT_FOUND, INVALID_ARGUMENT...) do not count and reach the caller as they are.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import grpc
from google.protobuf.message import Message

from runtime import rpc_tracing, transport_security
from runtime.breaker import Breaker, BreakerOpenError
from runtime.errors import DependencyUnavailableError

R = TypeVar("R", bound=Message)
S = TypeVar("S")
Method = Callable[[S], Callable[..., Any]]
"""Picks the RPC to call from the callee's stub: `lambda inventory: inventory.GetProduct`."""

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
    breaker_half_open_max_calls: int = 1
    retry_max_attempts: int = 3
    retry_base_backoff_s: float = 0.05


def unhealthy(error: BaseException) -> bool:
    """Counts against the breaker: the callee is down, slow, or has no live instance."""
    if isinstance(error, DependencyUnavailableError):
        return True
    return isinstance(error, grpc.aio.AioRpcError) and error.code() in UNHEALTHY_CODES


class _MethodPaths:
    """Stands in for a channel when building a stub: each RPC becomes its full method name."""

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> str:
        return method

    unary_stream = stream_unary = stream_stream = unary_unary


class ServiceClient(Generic[S]):
    """Calls one callee's unary RPCs through its breaker, with a deadline; `stub` is the
    callee's generated stub class (`InventoryServiceStub`)."""

    def __init__(
        self,
        callee: str,
        resolver: Resolver,
        policy: CallPolicy,
        stub: Callable[[grpc.aio.Channel], S],
    ) -> None:
        self.callee = callee
        self._resolver = resolver
        self._policy = policy
        self._new_stub = stub
        self.breaker = Breaker(
            callee,
            policy.breaker_fail_max,
            policy.breaker_reset_timeout_s,
            policy.breaker_half_open_max_calls,
        )
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, S] = {}
        self._paths = stub(_MethodPaths())  # type: ignore[arg-type]
        """The stub over a channel that only names methods: `method(self._paths)` is the
        full method name of the RPC `method` picks, for the call's span."""

    def _stub(self, address: str) -> S:
        if address not in self._stubs:
            self._channels[address] = transport_security.channel(address)
            self._stubs[address] = self._new_stub(self._channels[address])
        return self._stubs[address]

    async def _once(
        self, method: Method[S], request: Message, metadata: tuple[tuple[str, str], ...]
    ) -> Any:
        address = await self._resolver.resolve()
        rpc = method(self._stub(address))
        with rpc_tracing.client_span(str(method(self._paths))) as traced:
            return await rpc(request, timeout=self._policy.deadline_s, metadata=metadata + traced)

    async def call(
        self,
        method: Method[S],
        request: Message,
        metadata: tuple[tuple[str, str], ...] = (),
        idempotent: bool = False,
    ) -> Any:
        """Calls the RPC `method` picks from the stub. Idempotent calls are retried on unhealthy
        answers, with jittered exponential backoff, up to `retry_max_attempts` in all."""
        attempts = self._policy.retry_max_attempts if idempotent else 1
        for attempt in range(1, attempts + 1):
            try:
                return await self.breaker.call(
                    lambda: self._once(method, request, metadata),
                    is_failure=unhealthy,
                )
            except BreakerOpenError as error:
                raise DependencyUnavailableError(self.callee, str(error)) from error
            except DependencyUnavailableError:
                if attempt == attempts:
                    raise  # no live instance, even after retries
            except grpc.aio.AioRpcError as error:
                if not unhealthy(error):
                    raise
                if attempt == attempts:
                    raise DependencyUnavailableError(
                        self.callee,
                        f"{self.callee} did not answer ({error.code().name}: {error.details()})"
                        f" after {attempts} attempt(s); breaker {self.breaker.state}",
                    ) from error
            backoff_s = self._policy.retry_base_backoff_s * 2 ** (attempt - 1)
            await asyncio.sleep(random.uniform(0, backoff_s))
        raise AssertionError("unreachable")

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()
