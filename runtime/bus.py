"""The connection to NATS JetStream: connect with endless reconnects, ensure the streams,
publish envelopes with their headers.

The bus takes a list of servers (one nats-server, or the nodes of a JetStream cluster): it
connects to any of them and, when that one goes away, reconnects to a survivor. `generation`
counts reconnections: consumers compare it to resubscribe after a reconnect, since nats-py pull
subscriptions can otherwise stop silently.

On a cluster, a stream or consumer leader can move while the connection stays up (its node
died, or an election): for a few seconds JetStream requests time out or find no responder.
`leader_unavailable` names those errors, so callers wait and retry instead of failing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import nats
from nats.aio.client import Client
from nats.errors import ConnectionClosedError, NoRespondersError, StaleConnectionError
from nats.js import JetStreamContext
from nats.js.api import PubAck, StreamConfig
from nats.js.errors import (
    APIError,
    NoStreamResponseError,
    ServerError,
    ServiceUnavailableError,
)
from nats.js.errors import NotFoundError as StreamNotFoundError

from runtime.logs import get_logger
from runtime.messages import Envelope
from runtime.pending_acks import PendingAcks
from runtime.streams import StreamLimits, stream_configs

log = get_logger(__name__)
CONNECT_RETRY_S = 0.5
STREAMS_RETRY_S = 0.5
STREAMS_LOG_EVERY_S = 10.0
"""While the cluster elects its leaders, `ensure_streams` says so at most this often."""

JETSTREAM_NOT_READY = {
    10005,  # no suitable peers for placement: the meta leader does not know enough nodes yet
    10008,  # JetStream system temporarily unavailable (no meta leader yet)
    10023,  # insufficient resources: fewer peers known than replicas asked for (still forming)
}


STORAGE_RESOURCES_EXCEEDED = 10047
"""The streams' `max_bytes` add up to more than the server's `max_file_store`: configuration,
not an election; retrying would wait forever (runtime/streams.py, `StreamLimits`)."""


def leader_unavailable(error: BaseException) -> bool:
    """True for what a JetStream request meets while a leader is being elected or the
    connection moves to another server: worth retrying, not a fault in the request."""
    if isinstance(error, APIError) and error.err_code == STORAGE_RESOURCES_EXCEEDED:
        return False
    if isinstance(
        error,
        TimeoutError
        | NoRespondersError
        | NoStreamResponseError
        | ServiceUnavailableError
        | ServerError
        | ConnectionClosedError
        | StaleConnectionError,
    ):
        return True
    return isinstance(error, APIError) and error.err_code in JETSTREAM_NOT_READY


class Bus:
    def __init__(
        self,
        servers: Sequence[str],
        name: str,
        request_timeout_s: float,
        replicas: int = 1,
        limits: StreamLimits | None = None,
    ) -> None:
        self.servers = list(servers)
        self.name = name
        self.request_timeout_s = request_timeout_s
        self.replicas = replicas
        self.limits = limits or StreamLimits()
        """How much each stream keeps (CONCORD_*_STREAM_MAX_*, docs/platform.md "Retention")."""
        self.generation = 0
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._acks: PendingAcks | None = None

    async def connect(self) -> None:
        """Connects, retrying until nats-server answers: a service may start before it."""
        while True:
            try:
                self._nc = await nats.connect(
                    servers=self.servers,
                    name=self.name,
                    connect_timeout=2,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    reconnected_cb=self._on_reconnected,
                    disconnected_cb=self._on_disconnected,
                    error_cb=self._on_error,
                )
                break
            except (OSError, nats.errors.NoServersError, TimeoutError) as exc:
                log.warning("nats_connect_failed", servers=self.servers, error=str(exc))
                await asyncio.sleep(CONNECT_RETRY_S)
        self._js = self._nc.jetstream(timeout=self.request_timeout_s)
        self._acks = PendingAcks(self._nc)
        await self._acks.start()
        log.info("nats_connected", server=self.server)

    @property
    def server(self) -> str:
        """The URL of the server this process is connected to now ("" when it is not)."""
        url = self._nc.connected_url if self._nc is not None else None
        return f"{url.scheme}://{url.netloc}" if url else ""

    async def _on_reconnected(self) -> None:
        self.generation += 1
        log.info("nats_reconnected", generation=self.generation, server=self.server)

    async def _on_disconnected(self) -> None:
        log.warning("nats_disconnected")

    async def _on_error(self, error: Exception) -> None:
        log.warning("nats_error", error=str(error))

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("bus is not connected")
        return self._js

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def ensure_streams(self) -> None:
        """Creates the streams, or updates them to the current definition: idempotent. A
        cluster that is still electing its meta leader answers with errors for a while: retry
        until it is ready, logging the wait at most every `STREAMS_LOG_EVERY_S`."""
        began = time.monotonic()
        logged_at = 0.0
        while True:
            try:
                await self._ensure_streams_once()
            except Exception as error:
                if not leader_unavailable(error):
                    raise
                now = time.monotonic()
                if now - logged_at >= STREAMS_LOG_EVERY_S:
                    logged_at = now
                    log.warning(
                        "nats_streams_waiting",
                        error=str(error) or type(error).__name__,
                        waited_s=round(now - began, 1),
                    )
                await asyncio.sleep(STREAMS_RETRY_S)
                continue
            log.info("nats_streams_ready", replicas=self.replicas)
            return

    async def _ensure_streams_once(self) -> None:
        for config in stream_configs(self.replicas, self.limits):
            await self._ensure_stream(config)

    async def _ensure_stream(self, config: StreamConfig) -> None:
        """Adds the stream if it is missing, else updates it to `config` (replicas, max_age,
        max_bytes and discard change in place). Never re-adds an existing one: JetStream checks
        a re-add's `max_bytes` against the store as if it were a new stream, and refuses it."""
        name = str(config.name)
        if not await self._stream_exists(name):
            try:
                await self.js.add_stream(config)
                return
            except APIError as error:
                # A cluster still forming is retried by the caller; another process that
                # created the stream meanwhile (services start together) is not an error.
                if leader_unavailable(error) or not await self._stream_exists(name):
                    raise
        await self.js.update_stream(config)

    async def _stream_exists(self, name: str) -> bool:
        try:
            await self.js.stream_info(name)
        except StreamNotFoundError:
            return False
        return True

    async def publish(self, envelope: Envelope) -> PubAck:
        """Publishes and waits for JetStream's ack: one round trip per message."""
        return await self.js.publish(
            envelope.subject,
            envelope.payload,
            timeout=self.request_timeout_s,
            headers=envelope.headers(),
        )

    async def send(self, envelope: Envelope) -> asyncio.Future[PubAck]:
        """Publishes without waiting: the future resolves with JetStream's ack (or its error),
        and `acknowledged` bounds the wait. Messages sent one after another on this connection
        reach the server, and a stream, in that order; so a window of them can be in flight
        while the acks come back (runtime/pending_acks.py)."""
        if self._acks is None:
            raise RuntimeError("bus is not connected")
        return await self._acks.send(envelope.subject, envelope.payload, envelope.headers())

    async def acknowledged(self, pending: asyncio.Future[PubAck], sent_at: float) -> PubAck:
        """Waits for a `send`'s ack until `request_timeout_s` after `sent_at` (monotonic): a
        publish lost in a leader election or a reconnect times out as `publish` would."""
        remaining_s = max(0.0, sent_at + self.request_timeout_s - time.monotonic())
        return await asyncio.wait_for(pending, timeout=remaining_s)

    async def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            try:
                await self._nc.drain()
            except Exception as error:  # e.g. still reconnecting: close without draining
                log.warning("nats_drain_failed", error=repr(error))
                await self._nc.close()
        self._nc = None
        self._js = None
        self._acks = None
