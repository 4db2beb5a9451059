"""Service bootstrap: the one way to run a Concord service.

`run_service(name, migrations, wire)` opens the service's database, starts a `grpc.aio`
server with health (NOT_SERVING until the database and NATS are ready, SERVING after,
NOT_SERVING while draining) and reflection, connects to JetStream, starts the outbox relay,
the consumers and any background tasks the service asks for, registers the service's own
servicers (not the platform's OperationsService) with the registry once SERVING
(registration.py, in the background), and on SIGTERM: deregisters, stops taking calls, lets
in-flight ones finish within the grace period, cancels and awaits every task, flushes the
outbox and closes everything.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from concord.ops.v1 import ops_service_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common import consumer, logs, outbox
from services.common.bus import Bus
from services.common.consumer import Consumer, Subscription
from services.common.database import Database
from services.common.diagnostics import SERVICE_NAME as DIAGNOSTICS_SERVICE
from services.common.diagnostics import DiagnosticsApi
from services.common.discovery import RegistryResolver
from services.common.grpc_errors import DomainErrorInterceptor
from services.common.logs import get_logger
from services.common.outbox import OutboxRelay
from services.common.registration import Registration
from services.common.registry_client import RegistryClientSettings
from services.common.settings import ServiceSettings

log = get_logger(__name__)

AddServicer = Callable[[Any, grpc.aio.Server], None]


@dataclass
class Platform:
    """What a service's wiring function gets: its settings, database, bus and a resolver that
    finds other services through the registry."""

    settings: ServiceSettings
    db: Database
    bus: Bus
    resolver: RegistryResolver


@dataclass
class ServiceParts:
    """What a service plugs into the platform."""

    servicers: list[tuple[AddServicer, Any, str]] = field(default_factory=list)
    """(add_XServicer_to_server, servicer, full service name)."""
    subscriptions: list[Subscription] = field(default_factory=list)
    background: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Long-running coroutines (timeouts, pollers); cancelled and awaited on shutdown."""
    on_drain: list[Callable[[], None]] = field(default_factory=list)
    """Called when draining starts, so endless streams can end within the grace period."""


class TaskGroupOwner:
    """Owns background tasks: logs one that dies, cancels and awaits all on shutdown."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def start(self, name: str, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(name)
        task.add_done_callback(self._report)
        self._tasks.append(task)

    def _report(self, task: asyncio.Task[None]) -> None:
        """A task that raises, or is cancelled before shutdown, is a bug to see (a CancelledError
        leaking out of a loop would otherwise end it silently); finishing is allowed."""
        if task.cancelled():
            if not self._stopping:
                log.error("background_task_cancelled", task=task.get_name())
        elif task.exception() is not None:
            log.error("background_task_died", task=task.get_name(), error=repr(task.exception()))
        elif not self._stopping:
            log.info("background_task_finished", task=task.get_name())

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


async def serve(
    settings: ServiceSettings,
    migrations: Sequence[str],
    wire: Callable[[Platform], ServiceParts],
    stop: asyncio.Event,
    *,
    needs_bus: bool = True,
    registers: bool = True,
) -> None:
    """`needs_bus=False` runs without NATS (no outbox relay; the wiring asks for no
    consumers); `registers=False` skips self-registration: both are for the registry itself."""
    db = Database(settings.database_path, settings.sqlite_busy_timeout_ms)
    await db.open(
        {"outbox": outbox.MIGRATIONS, "inbox": consumer.MIGRATIONS, settings.service: migrations}
    )
    bus = Bus(settings.nats_url, settings.service, settings.nats_request_timeout_s)
    registry_client = RegistryClientSettings.from_env()
    resolver = RegistryResolver(registry_client)
    parts = wire(Platform(settings, db, bus, resolver))

    consumers = [Consumer(sub, bus, db, settings) for sub in parts.subscriptions]
    # Only the service's own servicers are instances others may discover; the platform's
    # OperationsService on every process is for operators, who address a process directly.
    registered = [name for _, _, name in parts.servicers]
    parts.servicers.append(
        (
            ops_service_pb2_grpc.add_OperationsServiceServicer_to_server,
            DiagnosticsApi(settings.service, db, consumers),
            DIAGNOSTICS_SERVICE,
        )
    )
    health_servicer = health.aio.HealthServicer()
    server = grpc.aio.server(interceptors=[DomainErrorInterceptor()])
    names = [name for _, _, name in parts.servicers]
    for add, servicer, _ in parts.servicers:
        add(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    await _set_health(health_servicer, names, health_pb2.HealthCheckResponse.NOT_SERVING)
    bound = server.add_insecure_port(settings.address)
    if bound == 0:
        raise RuntimeError(f"cannot listen on {settings.address}")
    await server.start()
    log.info("grpc_listening", address=settings.address, services=names)

    tasks = TaskGroupOwner()
    relay = OutboxRelay(db, bus, settings.outbox_poll_interval_s, settings.outbox_batch_size)
    registration = Registration(registry_client, settings.address, settings.version, registered)
    try:
        if needs_bus:
            await bus.connect()
            await bus.ensure_streams()
            tasks.start("outbox-relay", relay.run())
        for consumer_ in consumers:
            tasks.start(f"consumer-{consumer_.sub.durable}", consumer_.run())
        for job in parts.background:
            tasks.start(getattr(job, "__name__", "background"), job())
        await _set_health(health_servicer, names, health_pb2.HealthCheckResponse.SERVING)
        log.info("service_ready", service=settings.service)
        if registers:
            registration.start()
        await stop.wait()
    finally:
        log.info("service_draining", service=settings.service)
        await registration.stop()
        for drain in parts.on_drain:
            drain()
        await _set_health(health_servicer, names, health_pb2.HealthCheckResponse.NOT_SERVING)
        await server.stop(settings.shutdown_grace_s)
        await tasks.stop()
        if bus.connected:
            flushed = await relay.flush(settings.shutdown_grace_s)
            log.info("outbox_flushed", complete=flushed)
        await bus.close()
        await resolver.close()
        await db.close()
        log.info("service_stopped", service=settings.service)


async def _set_health(servicer: health.aio.HealthServicer, names: list[str], status: int) -> None:
    for name in ["", *names]:
        await servicer.set(name, status)


def run_service(
    service: str,
    migrations: Sequence[str],
    wire: Callable[[Platform], ServiceParts],
    *,
    needs_bus: bool = True,
    registers: bool = True,
) -> None:
    """Entry point of every service's __main__: settings from the environment, logs as JSON,
    SIGTERM and SIGINT stop it gracefully."""
    settings = ServiceSettings.from_env(service)
    logs.configure(service)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, migrations, wire, stop, needs_bus=needs_bus, registers=registers)

    asyncio.run(main())
