"""The connection to NATS JetStream: connect with endless reconnects, ensure the streams,
publish envelopes with their headers.

`generation` counts reconnections: consumers compare it to resubscribe after a nats-server
restart, since nats-py pull subscriptions can otherwise stop silently.
"""

from __future__ import annotations

import asyncio

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import BadRequestError

from runtime.logs import get_logger
from runtime.messages import Envelope
from runtime.streams import stream_configs

log = get_logger(__name__)
CONNECT_RETRY_S = 0.5


class Bus:
    def __init__(self, url: str, name: str, request_timeout_s: float) -> None:
        self.url = url
        self.name = name
        self.request_timeout_s = request_timeout_s
        self.generation = 0
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None

    async def connect(self) -> None:
        """Connects, retrying until nats-server answers: a service may start before it."""
        while True:
            try:
                self._nc = await nats.connect(
                    self.url,
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
                log.warning("nats_connect_failed", url=self.url, error=str(exc))
                await asyncio.sleep(CONNECT_RETRY_S)
        self._js = self._nc.jetstream(timeout=self.request_timeout_s)
        log.info("nats_connected", url=self.url)

    async def _on_reconnected(self) -> None:
        self.generation += 1
        log.info("nats_reconnected", generation=self.generation)

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
        """Creates the streams, or updates them to the current definition: idempotent."""
        for config in stream_configs():
            try:
                await self.js.add_stream(config)
            except BadRequestError:
                await self.js.update_stream(config)

    async def publish(self, envelope: Envelope) -> PubAck:
        return await self.js.publish(
            envelope.subject,
            envelope.payload,
            timeout=self.request_timeout_s,
            headers=envelope.headers(),
        )

    async def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            try:
                await self._nc.drain()
            except Exception as error:  # e.g. still reconnecting: close without draining
                log.warning("nats_drain_failed", error=repr(error))
                await self._nc.close()
        self._nc = None
        self._js = None
