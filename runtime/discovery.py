"""Finds where a service runs by asking the registry: the only source of addresses.

Resolved sets are cached for `resolve_cache_ttl_s` so a busy caller does not ask the registry
on every call, and calls rotate round robin over the live instances. When the registry says
none is live (UNAVAILABLE, reason DEPENDENCY_UNAVAILABLE), callers get
DependencyUnavailableError (UNAVAILABLE to their own callers). When the registry itself is
unreachable, or has just restarted and is still warming up (reason REGISTRY_WARMING_UP: its
table is empty until instances register again), the last set it gave is reused, like Envoy
keeps its last endpoints; with nothing cached that too is DependencyUnavailableError. There is
no fixed address to fall back to.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import grpc
from concord.registry.v1 import discovery_service_pb2, discovery_service_pb2_grpc
from google.rpc import error_details_pb2, status_pb2

from runtime import transport_security
from runtime.errors import DEPENDENCY_UNAVAILABLE, DependencyUnavailableError
from runtime.logs import get_logger
from runtime.registry_client import RegistryClientSettings

log = get_logger(__name__)

REGISTRY_WARMING_UP = "REGISTRY_WARMING_UP"
"""The ErrorInfo reason of the registry's "none live yet" during its warm-up after a start
(registry/discovery_api.py): not to be trusted, so the last resolution is kept."""


@dataclass
class _Resolved:
    addresses: list[str]
    fetched_at: float
    turn: itertools.count[int] = field(default_factory=itertools.count)


@dataclass(frozen=True)
class ServiceResolver:
    """One callee's addresses, in the shape clients.ServiceClient takes (clients.Resolver):
    `ServiceClient("inventory", platform.resolver.for_service(INVENTORY), policy)`."""

    registry: RegistryResolver
    service_name: str

    async def resolve(self) -> str:
        return await self.registry.address(self.service_name)


class RegistryResolver:
    """One per process (Platform.resolver): finds any service's live instances."""

    def __init__(self, settings: RegistryClientSettings) -> None:
        self._settings = settings
        self._cache: dict[str, _Resolved] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._registry: grpc.aio.Channel | None = None

    def for_service(self, service_name: str) -> ServiceResolver:
        return ServiceResolver(self, service_name)

    async def address(self, service_name: str) -> str:
        """The next live instance's host:port, round robin."""
        resolved = await self._resolved(service_name)
        return resolved.addresses[next(resolved.turn) % len(resolved.addresses)]

    async def channel(self, service_name: str) -> grpc.aio.Channel:
        """A channel to the next live instance; channels are kept per address and reused."""
        address = await self.address(service_name)
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = transport_security.channel(address)
        return channel

    def forget(self, service_name: str) -> None:
        """Drops the cached set, e.g. after a call to one of its instances failed to connect."""
        self._cache.pop(service_name, None)

    async def close(self) -> None:
        for channel in [*self._channels.values(), *filter(None, [self._registry])]:
            await channel.close()
        self._channels.clear()
        self._registry = None

    async def _resolved(self, service_name: str) -> _Resolved:
        cached = self._cache.get(service_name)
        if (
            cached is not None
            and time.monotonic() - cached.fetched_at < self._settings.resolve_cache_ttl_s
        ):
            return cached
        if self._registry is None:
            self._registry = self._settings.channel()
        stub = discovery_service_pb2_grpc.DiscoveryServiceStub(self._registry)
        try:
            reply = await stub.Resolve(
                discovery_service_pb2.ResolveRequest(service_name=service_name),
                timeout=self._settings.registry_call_timeout_s,
            )
        except grpc.aio.AioRpcError as error:
            reason = registry_reason(error)
            if error.code() == grpc.StatusCode.UNAVAILABLE and reason == DEPENDENCY_UNAVAILABLE:
                self._cache.pop(service_name, None)
                raise DependencyUnavailableError(
                    service_name, f"no live instance of {service_name}: {error.details()}"
                ) from error
            if cached is not None:
                log.warning(
                    "registry_warming_up_using_last_resolution"
                    if reason == REGISTRY_WARMING_UP
                    else "registry_unreachable_using_last_resolution",
                    service_name=service_name,
                    code=error.code().name,
                )
                return cached
            raise DependencyUnavailableError(
                service_name,
                f"cannot resolve {service_name}: registry at "
                f"{self._settings.registry_address} answered {error.code().name}: "
                f"{error.details()}",
            ) from error
        addresses = [instance.address for instance in reply.instances]
        resolved = _Resolved(addresses, time.monotonic())
        if cached is not None:
            resolved.turn = cached.turn
        self._cache[service_name] = resolved
        return resolved


def registry_reason(error: grpc.aio.AioRpcError) -> str | None:
    """The ErrorInfo reason of the registry's own answer: DEPENDENCY_UNAVAILABLE for "none is
    live", REGISTRY_WARMING_UP for "none live yet, just started"; None when the registry was
    unreachable (also UNAVAILABLE, but raised by the channel, without details)."""
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return str(info.reason)
    return None
