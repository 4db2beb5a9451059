"""Keeps a service's instances registered with the registry for as long as the process serves.

Started after the server reports SERVING; it never blocks start-up: while the registry is down
it retries in the background with a capped back-off. A Heartbeat answered NOT_FOUND means the
registry restarted with its table in memory (or the instance was forgotten), so the instance
registers again at once. With several registry replicas (CONCORD_REGISTRY_ADDRESS a list) the
calls go to whichever is up (registry_client.py). Stopping (SIGTERM) ends the heartbeat loop first, then deregisters, so a late heartbeat
cannot re-register an instance that is going away.

Each Register carries the fingerprint of the contract the service was built from
(runtime/contract_fingerprint.py); the image behind it is sent only when the registry answers
FAILED_PRECONDITION / CONTRACT_IMAGE_REQUIRED (it has not seen that fingerprint: first sight,
or the registry restarted), so a heartbeat or a known contract costs no image bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence

import grpc
from concord.registry.v1 import discovery_service_pb2, discovery_service_pb2_grpc

from runtime.contract_fingerprint import ServiceContract
from runtime.discovery import registry_reason
from runtime.logs import get_logger
from runtime.registry_client import RegistryClientSettings

log = get_logger(__name__)

INITIAL_RETRY_S = 0.25
CONTRACT_IMAGE_REQUIRED = "CONTRACT_IMAGE_REQUIRED"
"""The registry's ErrorInfo reason for "register again with contract_image"."""


class Registration:
    def __init__(
        self,
        settings: RegistryClientSettings,
        address: str,
        version: str,
        service_names: Sequence[str],
        metadata: Mapping[str, str] | None = None,
        contracts: Mapping[str, ServiceContract] | None = None,
    ) -> None:
        self._settings = settings
        self._address = address
        self._version = version
        self._names = list(service_names)
        self._metadata = dict(metadata or {})
        self._contracts = dict(contracts or {})
        """service name -> the contract it was built from; a name without one sends none."""
        self._leases: dict[str, str] = {}
        """service name -> instance id, for the names currently registered."""
        self._channel: grpc.aio.Channel | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def instance_ids(self) -> dict[str, str]:
        return dict(self._leases)

    def start(self) -> None:
        self._channel = self._settings.channel()
        self._task = asyncio.create_task(self._keep_registered(), name="registration")

    async def stop(self) -> None:
        """Stops heartbeating, then deregisters every instance within one call deadline each."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._channel is None:
            return
        stub = discovery_service_pb2_grpc.DiscoveryServiceStub(self._channel)
        for name, instance_id in list(self._leases.items()):
            with contextlib.suppress(grpc.aio.AioRpcError):
                await stub.Deregister(
                    discovery_service_pb2.DeregisterRequest(instance_id=instance_id),
                    timeout=self._settings.registry_call_timeout_s,
                )
                log.info("deregistered", service_name=name, instance_id=instance_id)
        self._leases.clear()
        await self._channel.close()
        self._channel = None

    async def _keep_registered(self) -> None:
        assert self._channel is not None
        stub = discovery_service_pb2_grpc.DiscoveryServiceStub(self._channel)
        retry_s = INITIAL_RETRY_S
        unreachable = False
        interval_s = self._settings.heartbeat_interval_s
        while True:
            try:
                for name in self._names:
                    interval_s = min(interval_s, await self._renew(stub, name))
                if unreachable:
                    log.info("registry_reachable", registry=self._settings.registry_address)
                unreachable = False
                retry_s = INITIAL_RETRY_S
                delay_s = interval_s
            except grpc.aio.AioRpcError as error:
                if not unreachable:
                    log.warning(
                        "registry_unreachable",
                        registry=self._settings.registry_address,
                        code=error.code().name,
                        detail=error.details(),
                    )
                unreachable = True
                delay_s = retry_s
                retry_s = min(retry_s * 2, self._settings.registration_retry_max_s)
            except Exception as error:  # anything else: keep the lease alive, say why
                log.error("registration_failed", exc_info=True, error=repr(error))
                delay_s = retry_s
                retry_s = min(retry_s * 2, self._settings.registration_retry_max_s)
            await asyncio.sleep(delay_s)

    async def _renew(
        self, stub: discovery_service_pb2_grpc.DiscoveryServiceStub, name: str
    ) -> float:
        """Heartbeats `name`'s instance, registering it when unknown; returns the heartbeat
        interval its lease asks for (a third of the TTL at most)."""
        timeout_s = self._settings.registry_call_timeout_s
        instance_id = self._leases.get(name)
        if instance_id is not None:
            try:
                await stub.Heartbeat(
                    discovery_service_pb2.HeartbeatRequest(instance_id=instance_id),
                    timeout=timeout_s,
                )
                return self._settings.heartbeat_interval_s
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
                log.info("lease_unknown_reregistering", service_name=name, instance_id=instance_id)
                del self._leases[name]
        reply = await self._register(stub, name)
        self._leases[name] = reply.instance.instance_id
        log.info(
            "registered",
            service_name=name,
            instance_id=reply.instance.instance_id,
            address=self._address,
            lease_ttl_s=reply.lease_ttl.ToTimedelta().total_seconds(),
            contract_fingerprint=reply.instance.contract_fingerprint,
            contract_version=reply.instance.contract_version,
            routable=reply.instance.routable,
        )
        return min(
            self._settings.heartbeat_interval_s, reply.lease_ttl.ToTimedelta().total_seconds() / 3
        )

    async def _register(
        self, stub: discovery_service_pb2_grpc.DiscoveryServiceStub, name: str
    ) -> discovery_service_pb2.RegisterResponse:
        """Registers without the contract image, and again with it if the registry asks."""
        contract = self._contracts.get(name)
        request = discovery_service_pb2.RegisterRequest(
            service_name=name,
            address=self._address,
            version=self._version,
            metadata=self._metadata,
            contract_fingerprint=contract.fingerprint if contract else "",
        )
        timeout_s = self._settings.registry_call_timeout_s
        try:
            reply: discovery_service_pb2.RegisterResponse = await stub.Register(
                request, timeout=timeout_s
            )
            return reply
        except grpc.aio.AioRpcError as error:
            wants_image = (
                error.code() == grpc.StatusCode.FAILED_PRECONDITION
                and registry_reason(error) == CONTRACT_IMAGE_REQUIRED
            )
            if contract is None or not wants_image:
                raise
        log.info("contract_image_sent", service_name=name, fingerprint=contract.fingerprint)
        request.contract_image = contract.image
        reply = await stub.Register(request, timeout=timeout_s)
        return reply
