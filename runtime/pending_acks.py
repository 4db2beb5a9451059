"""JetStream publishes whose acks are awaited later: a window of them can be in flight at once.

A JetStream publish is a NATS publish with a reply subject; the stream answers there with its
ack (or an error). `PendingAcks` owns one wildcard reply subscription on the bus's connection
and hands out a future per publish. nats-py's own `publish_async` would do, but it leaves the
future unresolved when JetStream answers with an error (a full stream: its reply handler raises
instead of setting the exception), so a refusal would look like a timeout, seconds later.
Publishes go out in the order `send` is called: nats-py appends each to its write buffer before
returning, so a stream stores them in that order.
"""

from __future__ import annotations

import asyncio
import itertools
import json

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import PubAck
from nats.js.errors import APIError, NoStreamResponseError

STATUS_HEADER = "Status"
NO_RESPONDERS = "503"
"""No stream listens on the subject (or none has a leader yet): what `js.publish` raises as
NoStreamResponseError."""


class PendingAcks:
    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._prefix = f"{nc.new_inbox()}."
        self._tokens = itertools.count()
        self._waiting: dict[str, asyncio.Future[PubAck]] = {}
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        """Subscribes to the replies; nats-py renews the subscription after a reconnect."""
        self._subscription = await self._nc.subscribe(f"{self._prefix}*", cb=self._on_reply)

    async def send(
        self, subject: str, payload: bytes, headers: dict[str, str]
    ) -> asyncio.Future[PubAck]:
        if self._subscription is None:
            raise RuntimeError("PendingAcks.start() was not called")
        token = str(next(self._tokens))
        ack: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
        self._waiting[token] = ack
        ack.add_done_callback(lambda _: self._waiting.pop(token, None))
        try:
            await self._nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
        except BaseException:
            ack.cancel()
            raise
        return ack

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    async def _on_reply(self, msg: Msg) -> None:
        ack = self._waiting.get(msg.subject[len(self._prefix) :])
        if ack is None or ack.done():
            return  # timed out and given up on, or a duplicate reply
        if msg.headers and msg.headers.get(STATUS_HEADER) == NO_RESPONDERS:
            ack.set_exception(NoStreamResponseError())
            return
        try:
            reply = json.loads(msg.data)
            if "error" in reply:
                APIError.from_error(reply["error"])  # raises the error's class
            ack.set_result(PubAck.from_response(reply))
        except Exception as error:
            ack.set_exception(error)
