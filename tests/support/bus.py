"""Talking to JetStream the way services do: send commands with Concord's headers, and watch a
stream's events decoded by type."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from runtime.messages import HEADER_MSG_ID, HEADER_TYPE, Envelope, decode

WAIT_TIMEOUT_S = 30.0


async def send(nc: Client, message: Message) -> None:
    """Publishes a command or event exactly as an outbox relay would."""
    envelope = Envelope.wrap(message)
    await nc.jetstream().publish(envelope.subject, envelope.payload, headers=envelope.headers())


@dataclass
class Seen:
    message_id: str
    message: Any


class StreamWatcher:
    """Reads a whole stream from its start (an ephemeral consumer); each call to `wait_for`
    fetches what has arrived and checks the predicate, up to a bounded wait."""

    def __init__(self, nc: Client, stream: str) -> None:
        self._js = nc.jetstream()
        self._stream = stream
        self._psub: Any = None
        self.seen: list[Seen] = []

    async def _subscription(self) -> Any:
        if self._psub is None:
            await self._js.stream_info(self._stream)
            self._psub = await self._js.pull_subscribe(
                "",
                durable=None,
                stream=self._stream,
                config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
            )
        return self._psub

    async def poll(self) -> None:
        psub = await self._subscription()
        try:
            msgs = await psub.fetch(100, timeout=0.3)
        except TimeoutError:
            return
        for msg in msgs:
            headers = msg.headers or {}
            self.seen.append(
                Seen(headers.get(HEADER_MSG_ID, ""), decode(headers[HEADER_TYPE], msg.data))
            )

    def of_type(self, cls: type[Message]) -> list[Any]:
        return [
            s.message
            for s in self.seen
            if s.message.DESCRIPTOR.full_name == cls.DESCRIPTOR.full_name
        ]

    async def wait_for_total(
        self, classes: tuple[type[Message], ...], count: int, timeout_s: float = WAIT_TIMEOUT_S
    ) -> None:
        """Waits until `count` messages of any of `classes` have arrived."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while sum(len(self.of_type(cls)) for cls in classes) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"waited {timeout_s}s for {count} outcomes")
            await self.poll()

    async def wait_for(
        self,
        cls: type[Message],
        order_id: str | None = None,
        count: int = 1,
        timeout_s: float = WAIT_TIMEOUT_S,
    ) -> list[Any]:
        """Waits until `count` messages of `cls` (for `order_id`, when given) have arrived."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            await self.poll()
            found = [
                m
                for m in self.of_type(cls)
                if order_id is None or getattr(m, "order_id", None) == order_id
            ]
            if len(found) >= count:
                return found
            if asyncio.get_running_loop().time() > deadline:
                names = [s.message.DESCRIPTOR.name for s in self.seen]
                raise AssertionError(
                    f"waited {timeout_s}s for {count} {cls.DESCRIPTOR.name}; saw {names}"
                )
            await asyncio.sleep(0.05)
