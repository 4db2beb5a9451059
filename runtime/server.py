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
from functools import partial
from typing import Any

import grpc
from concord.ops.v1 import ops_service_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from runtime import (
    breaker,
    consumer,
    lease,
    logs,
    outbox,
    paging,
    rpc_tracing,
    tracing,
    transport_security,
)
from runtime.bus import Bus
from runtime.consumer import Consumer, Subscription
from runtime.contract_fingerprint import own_contracts
from runtime.database import Database
from runtime.dead_letters import DeadLetters
from runtime.diagnostics import SERVICE_NAME as DIAGNOSTICS_SERVICE
from runtime.diagnostics import DiagnosticsApi
from runtime.discovery import RegistryResolver
from runtime.grpc_errors import DomainErrorInterceptor
from runtime.logs import get_logger
from runtime.metrics import Metrics, Probe, RpcMetricsInterceptor
from runtime.outbox import OutboxRelay
from runtime.peer_trust import PeerTrustInterceptor
from runtime.registration import Registration
from runtime.registry_client import RegistryClientSettings
from runtime.retention import Retention
from runtime.settings import ServiceSettings
from runtime.storage import database_for
from runtime.supervisor import Supervisor

SERVER_OPTIONS = [("grpc.so_reuseport", 0)]
"""grpc turns SO_REUSEPORT on by default, so a second process binding a port already served
would silently share its traffic; off, the second bind fails with a clear error instead."""

log = get_logger(__name__)

AddServicer = Callable[[Any, grpc.aio.Server], None]


@dataclass
class Platform:
    """What a service's wiring function gets: its settings, database, bus, a resolver that
    finds other services through the registry, and the page tokens of its database."""

    settings: ServiceSettings
    db: Database
    bus: Bus
    resolver: RegistryResolver
    page_tokens: paging.PageTokens


@dataclass
class ServiceParts:
    """What a service plugs into the platform."""

    servicers: list[tuple[AddServicer, Any, str]] = field(default_factory=list)
    """(add_XServicer_to_server, servicer, full service name)."""
    handlers: list[grpc.GenericRpcHandler] = field(default_factory=list)
    """Served, but not listed by reflection, health or the registry: the registry's reflection
    for the gateway (registry/public_reflection.py) is one."""
    subscriptions: list[Subscription] = field(default_factory=list)
    background: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Long-running coroutines (timeouts, pollers); cancelled and awaited on shutdown."""
    singletons: dict[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)
    """Background coroutines that must run on one instance of the service at a time, by name:
    each runs only while this instance holds the lease of that name (runtime/lease.py)."""
    on_drain: list[Callable[[], None]] = field(default_factory=list)
    """Called when draining starts, so endless streams can end within the grace period."""
    on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Awaited last, after the server and every loop stopped: close clients and channels."""
    probes: list[Probe] = field(default_factory=list)
    """The service's own metrics, read at each scrape (runtime/metrics.py): sagas by step."""
    opening: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    """Awaited before the server listens: the registry replicas load their shared state, so a
    restarted replica answers from the whole table from its first call."""


def database_migrations(service: str, migrations: Sequence[str]) -> dict[str, Sequence[str]]:
    """Every migration group of a service's database: the platform's, then its own. Application
    tests open their temporary databases with these too."""
    return {
        "outbox": outbox.MIGRATIONS,
        "inbox": consumer.MIGRATIONS,
        "paging": paging.MIGRATIONS,
        "leases": lease.MIGRATIONS,
        service: migrations,
    }


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
    db = database_for(settings)
    await db.open(database_migrations(settings.service, migrations))
    log.info("database_open", service=settings.service, location=db.location)
    page_tokens = paging.PageTokens(await db.read(paging.load_key))
    bus = Bus(
        settings.nats_servers,
        settings.service,
        settings.nats_request_timeout_s,
        replicas=settings.nats_replicas,
        limits=settings.retention.streams,
    )
    registry_client = RegistryClientSettings.from_env()
    resolver = RegistryResolver(registry_client)
    parts = wire(Platform(settings, db, bus, resolver, page_tokens))
    for step in parts.opening:
        if not await _unless_stopped(step(), stop):  # SIGTERM while still opening
            await bus.close()
            await db.close()
            return

    consumers = [Consumer(sub, bus, db, settings) for sub in parts.subscriptions]
    retention = Retention(db, settings.retention)
    parts.singletons.setdefault("retention", retention.run)
    parts.probes.append(retention.retention_readings)
    # Only the service's own servicers are instances others may discover; the platform's
    # OperationsService on every process is for operators, who address a process directly.
    registered = [name for _, _, name in parts.servicers]
    parts.servicers.append(
        (
            ops_service_pb2_grpc.add_OperationsServiceServicer_to_server,
            DiagnosticsApi(
                settings.service,
                db,
                consumers,
                DeadLetters(bus, settings.service) if needs_bus else None,
            ),
            DIAGNOSTICS_SERVICE,
        )
    )
    metrics = _metrics(settings, parts, consumers, needs_bus, db)
    tls = transport_security.configured()
    interceptors: list[grpc.aio.ServerInterceptor] = [
        *([PeerTrustInterceptor()] if tls is not None else []),
        *rpc_tracing.server_interceptors(),
        DomainErrorInterceptor(),
    ]
    if metrics is not None:
        interceptors.insert(0, RpcMetricsInterceptor(metrics))
    health_servicer = health.aio.HealthServicer()
    server = grpc.aio.server(interceptors=interceptors, options=SERVER_OPTIONS)
    names = [name for _, _, name in parts.servicers]
    for add, servicer, _ in parts.servicers:
        add(servicer, server)
    if parts.handlers:
        server.add_generic_rpc_handlers(tuple(parts.handlers))
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
    bound = transport_security.listen(server, settings.address, tls)
    if bound == 0:
        raise RuntimeError(f"cannot listen on {settings.address}")
    await server.start()
    log.info("grpc_listening", address=settings.address, services=names, mtls=tls is not None)
    if metrics is not None:
        try:
            metrics.serve(settings.host, settings.metrics.port)
        except OSError:
            await server.stop(0)
            raise
    health_server = await _health_port(settings, health_servicer)

    tasks = Supervisor()
    relay = OutboxRelay(
        db,
        bus,
        settings.outbox_poll_interval_s,
        settings.outbox_batch_size,
        settings.outbox_publish_window,
    )
    registration = Registration(
        registry_client,
        settings.address,
        settings.version,
        registered,
        contracts=own_contracts(registered) if registers else None,
    )
    try:
        if tls is None and not _loopback(settings.host):
            log.warning(
                "listening_beyond_loopback",
                address=settings.address,
                risk="plaintext: calls without identity metadata are trusted as internal; "
                "set CONCORD_TLS_* for mutual TLS (docs/deploy.md#certificates)",
            )
        if needs_bus:
            if not await _unless_stopped(bus.connect(), stop):
                return  # SIGTERM while still waiting for NATS
            if not await _unless_stopped(bus.ensure_streams(), stop):
                return  # SIGTERM while the cluster was still electing its leaders
            singletons = {"outbox-relay": relay.run, **parts.singletons}
        else:
            singletons = dict(parts.singletons)
        holder = lease.new_holder(settings.address)
        for name, singleton in singletons.items():
            job_lease = lease.Lease(db, name, holder, settings.lease_ttl_s)
            tasks.start(name, partial(lease.hold, job_lease, singleton))
        for consumer_ in consumers:
            tasks.start(f"consumer-{consumer_.sub.durable}", consumer_.run)
        for job in parts.background:
            tasks.start(getattr(job, "__name__", "background"), job)
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
        if health_server is not None:
            await health_server.stop(0)
        await tasks.stop()
        if bus.connected:
            flushed = await relay.flush(settings.shutdown_grace_s)
            log.info("outbox_flushed", complete=flushed)
        await bus.close()
        for close in parts.on_close:
            await close()
        await resolver.close()
        if metrics is not None:
            metrics.close()
        await db.close()
        log.info("service_stopped", service=settings.service)


def _metrics(
    settings: ServiceSettings,
    parts: ServiceParts,
    consumers: list[Consumer],
    needs_bus: bool,
    db: Database,
) -> Metrics | None:
    """The process's metrics and what they read at a scrape; None when turned off."""
    if not settings.metrics.enabled:
        return None
    metrics = Metrics(
        settings.service, asyncio.get_running_loop(), settings.metrics.scrape_timeout_s
    )
    if needs_bus:

        async def outbox_readings() -> list[Any]:
            return await outbox.readings(db)

        metrics.add_probe("outbox", outbox_readings)
        for consumer_ in consumers:
            metrics.add_probe(f"consumer:{consumer_.sub.durable}", consumer_.readings)
    metrics.add_probe("breakers", breaker.readings)
    for n, probe in enumerate(parts.probes):
        metrics.add_probe(getattr(probe, "__name__", f"service-{n}"), probe)
    return metrics


def _loopback(host: str) -> bool:
    return host.startswith("127.") or host in ("localhost", "::1")


async def _health_port(
    settings: ServiceSettings, servicer: health.aio.HealthServicer
) -> grpc.aio.Server | None:
    """grpc.health.v1 alone, in plaintext, on `CONCORD_<NAME>_HEALTH_PORT` when set: for
    probes that cannot present a client certificate (Kubernetes' gRPC probes) once the main
    port requires one. It answers health and nothing else, so it grants nothing."""
    if settings.health_port is None:
        return None
    server = grpc.aio.server(options=SERVER_OPTIONS)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    address = f"{settings.host}:{settings.health_port}"
    if server.add_insecure_port(address) == 0:
        raise RuntimeError(f"cannot listen on {address}")
    await server.start()
    log.info("health_listening", address=address)
    return server


async def _unless_stopped(work: Awaitable[None], stop: asyncio.Event) -> bool:
    """Runs `work` unless `stop` is set first (then cancels it); True when it finished."""
    job = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({job, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if job.done():
        job.result()
        return True
    job.cancel()
    await asyncio.gather(job, return_exceptions=True)
    return False


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
    tracing.configure(service, settings.data_dir)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, migrations, wire, stop, needs_bus=needs_bus, registers=registers)

    try:
        asyncio.run(main())
    finally:
        tracing.shutdown()
