"""Idempotent JetStream consumers: durable pull consumers with explicit acks.

For each message: decode it by its type header, then, in one database transaction, record its
id in the inbox and run the handler (which may stage outgoing messages in the outbox). Only
after that commit is the message acked, so a crash before the ack redelivers it, and the inbox
turns the redelivery into a no-op. A fetched batch shares one transaction (one commit for up to
`consumer_fetch_batch` messages), applied in stream order; if it fails, each of its messages is
applied in a transaction of its own, so one failing message holds up none of the others. Messages that cannot be decoded, have no handler, or fail
`max_deliver` times go to the dead-letter subject with the reason, and are counted; an
operator replays them once the cause is fixed (runtime/dead_letters.py), and the inbox knows a
replay by its original id (`Concord-Replay-Of`), so it is still processed at most once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from opentelemetry.trace import INVALID_SPAN, Span, StatusCode

from runtime import tracing
from runtime.bus import Bus, leader_unavailable
from runtime.database import Connection, Database
from runtime.dead_letters import dead_letter_headers, inbox_id
from runtime.faults import crash_point, failure_point
from runtime.logs import get_logger, log_context
from runtime.messages import (
    HEADER_MSG_ID,
    HEADER_TRACEPARENT,
    HEADER_TYPE,
    UndecodableMessageError,
    decode,
    subject_for,
    trace_id_of,
)
from runtime.metrics import Reading, counter, gauge
from runtime.settings import ServiceSettings
from runtime.streams import dead_letter_subject

log = get_logger(__name__)

MIGRATIONS = [
    """CREATE TABLE IF NOT EXISTS inbox (
        consumer TEXT NOT NULL,
        message_id TEXT NOT NULL,
        type_name TEXT NOT NULL,
        processed_at REAL NOT NULL,
        PRIMARY KEY (consumer, message_id)
    )""",
    "CREATE INDEX IF NOT EXISTS inbox_processed_at ON inbox (processed_at)",
]

MAX_NAK_DELAY_S = 30.0
"""A failing handler is retried with a doubling delay up to this, so a transient fault (a busy
or full disk) has about a minute to clear over the default deliveries before dead-lettering."""

RESUBSCRIBE_DELAY_S = 0.5
READY_WAIT_S = 0.001
"""How long a batch waits for more messages once one has come: about the no-wait request's
round trip, so a quiet consumer answers at once (a saga crosses eight consumers one after the
other) and a busy one still takes a batch a fetch. A reply that comes later is not lost: it
waits in the subscription's queue, which the next fetch drains first."""
MAX_RESUBSCRIBE_DELAY_S = 4.0

Handler = Callable[[Connection, Message], None]
"""Runs inside the consumer's transaction; raise to have the message redelivered."""


def handler_map(
    *pairs: tuple[type[Message], Callable[[Connection, Any], None]],
) -> dict[str, Handler]:
    """{full type name: handler} from (message class, handler) pairs."""
    return {cls.DESCRIPTOR.full_name: handler for cls, handler in pairs}


def apply_once(
    conn: Connection,
    consumer: str,
    message_id: str,
    type_name: str,
    message: Message,
    handler: Handler,
) -> bool:
    """Records the message in `consumer`'s inbox and runs its handler, in the caller's
    transaction; False, running nothing, when the inbox already holds it (a redelivery).
    Application tests feed messages through here too, so they see what a consumer does."""
    inserted = conn.execute(
        "INSERT INTO inbox (consumer, message_id, type_name, processed_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (consumer, message_id, type_name, time.time()),
    ).rowcount
    if not inserted:
        return False
    failure_point("consumer.handler", type_name)
    handler(conn, message)
    return True


def prune_inbox(conn: Connection, processed_before: float, limit: int) -> int:
    """Deletes up to `limit` inbox entries processed before then, oldest first. Only safe once
    their messages can no longer come back: the retention job derives that horizon
    (settings.required_inbox_retention_s)."""
    return conn.execute(
        "DELETE FROM inbox WHERE (consumer, message_id) IN (SELECT consumer, message_id"
        " FROM inbox WHERE processed_at < ? ORDER BY processed_at LIMIT ?)",
        (processed_before, limit),
    ).rowcount


def inbox_size(conn: Connection) -> int:
    """Every entry, counted: for tests. Nothing runs it on a schedule (runtime/retention.py)."""
    return int(conn.execute("SELECT count(*) FROM inbox").fetchone()[0])


def oldest_inbox_entry(conn: Connection) -> float | None:
    """When the oldest entry was processed (the index makes it cheap); None when empty."""
    value = conn.execute("SELECT min(processed_at) FROM inbox").fetchone()[0]
    return None if value is None else float(value)


@dataclass(frozen=True)
class Subscription:
    """What a service consumes from one stream, and the handler for each message type."""

    stream: str
    durable: str
    handlers: dict[str, Handler]
    filter_subjects: list[str] = field(default_factory=list)
    """Defaults to the subjects of the handled types: other messages on the stream never
    reach this consumer (so they are neither processed nor dead-lettered)."""

    def subjects(self) -> list[str]:
        if self.filter_subjects:
            return self.filter_subjects
        return sorted(subject_for(decode(type_name, b"")) for type_name in self.handlers)


@dataclass
class ConsumerStats:
    processed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    redelivered: int = 0
    """Messages that arrived more than once (a nak, an ack that came too late, a restart)."""


class PoisonMessageError(Exception):
    pass


class Delivery:
    """One fetched message being handled: decoded, and the context it is handled in (its log
    fields and CONSUMER span), kept apart from the batch's other messages even while they
    share one transaction."""

    def __init__(
        self, msg: Msg, message_id: str, type_name: str, message: Message, handler: Handler
    ) -> None:
        self.msg = msg
        self.message_id = message_id
        self.type_name = type_name
        self.message = message
        self.handler = handler
        self.context = contextvars.copy_context()
        self._scope = contextlib.ExitStack()
        self.span: Span = INVALID_SPAN

    def open(
        self,
        fields: contextlib.AbstractContextManager[None],
        span: contextlib.AbstractContextManager[Span],
    ) -> None:
        self.context.run(self._scope.enter_context, fields)
        self.span = self.context.run(self._scope.enter_context, span)

    def close(self) -> None:
        """Ends the span (once; later calls do nothing)."""
        self.context.run(self._scope.close)


class Consumer:
    def __init__(
        self, sub: Subscription, bus: Bus, db: Database, settings: ServiceSettings
    ) -> None:
        self.sub = sub
        self._bus = bus
        self._db = db
        self._settings = settings
        self.stats = ConsumerStats()
        self._first_failures: dict[int, float] = {}
        """When this process first failed on a message still being retried, by stream sequence."""
        self._retry_s = RESUBSCRIBE_DELAY_S

    def _config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.sub.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self._settings.consumer_ack_wait_s,
            # One more than our own limit, so our dead-lettering decides, not the server.
            max_deliver=self._settings.consumer_max_deliver + 1,
            filter_subjects=self.sub.subjects(),
            max_ack_pending=1000,
        )

    async def run(self) -> None:
        """Fetches and processes until cancelled; resubscribes after reconnects and errors.
        On a cluster, the consumer's leader may be away for a few seconds (an election): the
        wait between attempts doubles up to `MAX_RESUBSCRIBE_DELAY_S`, so the log says so a
        handful of times, not hundreds."""
        self._retry_s = RESUBSCRIBE_DELAY_S
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "consumer_restarting",
                    durable=self.sub.durable,
                    error=str(exc) or type(exc).__name__,
                    leader_unavailable=leader_unavailable(exc),
                    retry_in_s=self._retry_s,
                )
                await asyncio.sleep(self._retry_s)
                self._retry_s = min(self._retry_s * 2, MAX_RESUBSCRIBE_DELAY_S)

    async def _consume(self) -> None:
        js = self._bus.js
        await js.add_consumer(self.sub.stream, self._config())
        psub = await js.pull_subscribe_bind(self.sub.durable, stream=self.sub.stream)
        generation = self._bus.generation
        idle_rounds = 0
        self._retry_s = RESUBSCRIBE_DELAY_S
        log.info("consumer_subscribed", durable=self.sub.durable, stream=self.sub.stream)
        try:
            while True:
                if self._bus.generation != generation:
                    log.info(
                        "consumer_resubscribing", durable=self.sub.durable, reason="reconnected"
                    )
                    return
                failure_point("consumer.fetch", self.sub.durable)  # a consumer that is stuck
                msgs = await self._fetch(psub)
                if not msgs:  # nothing came: idle, or a leader that moved (see _stalled)
                    idle_rounds += 1
                    if idle_rounds >= 2 and await self._stalled():
                        log.warning(
                            "consumer_resubscribing", durable=self.sub.durable, reason="stalled"
                        )
                        return
                    continue
                idle_rounds = 0
                await self._process(msgs)
        finally:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()

    async def _fetch(self, psub: JetStreamContext.PullSubscription) -> list[Msg]:
        """Up to a batch of what is ready, without holding a message back for the rest of one.
        nats-py's `fetch(n)` that has to wait for its first message then waits for all `n` or
        its timeout (nats-py 2.16, `_fetch_n`): an idle consumer would sit on the one message
        that woke it for up to `consumer_idle_check_s`. So: wait for one (`fetch(1)` returns as
        it arrives), then take what else is already there (a fetch asks without waiting first,
        and waits at most `READY_WAIT_S` when nothing is), unless the first said nothing else
        was waiting: the server counts, in each delivery's metadata, the messages still pending
        for the consumer, and a fetch that would come back empty is a round trip to
        nats-server and a wait for nothing, at every message of a consumer that keeps up."""
        try:
            first = await psub.fetch(1, timeout=self._settings.consumer_idle_check_s)
        except TimeoutError:
            return []
        more = self._settings.consumer_fetch_batch - len(first)
        if not first or more <= 0 or first[-1].metadata.num_pending == 0:
            return first
        try:
            return first + await psub.fetch(more, timeout=READY_WAIT_S)
        except TimeoutError:
            return first

    async def _stalled(self) -> bool:
        """True when the server holds messages for us that fetches do not return (after a
        server restart, or when the consumer's leader moved to another node of a cluster and
        the pull requests went to the old one)."""
        info = await self._bus.js.consumer_info(self.sub.stream, self.sub.durable)
        return bool(info.num_pending)

    async def readings(self) -> list[Reading]:
        """Lag from the server (what waits for this durable, and what it holds unacked), the
        rest from this process's own counts."""
        if not self._bus.connected:
            raise ConnectionError("NATS is not connected: consumer lag unknown")
        info = await self._bus.js.consumer_info(self.sub.stream, self.sub.durable)
        c = {"consumer": self.sub.durable, "stream": self.sub.stream}
        return [
            gauge(
                "concord_consumer_lag",
                "Messages on the stream not yet delivered",
                info.num_pending or 0,
                **c,
            ),
            gauge(
                "concord_consumer_ack_pending",
                "Messages delivered and not yet acknowledged",
                info.num_ack_pending or 0,
                **c,
            ),
            counter("concord_consumer_processed", "Messages handled", self.stats.processed, **c),
            counter(
                "concord_consumer_redeliveries",
                "Messages delivered again (nak, ack timeout, restart)",
                self.stats.redelivered,
                **c,
            ),
            counter(
                "concord_dead_letters",
                "Messages sent to the dead-letter subject (poison or failed max_deliver times)",
                self.stats.dead_lettered,
                **c,
            ),
        ]

    async def _process(self, msgs: list[Msg]) -> None:
        """Applies a fetched batch in one transaction, in fetch order, then acks each message:
        the effects and inbox entries are those of applying them one by one, committed at
        once. If the batch fails (a handler raised, the database refused), it rolls back and
        each message is applied alone, so only the failing one is naked or dead-lettered."""
        deliveries = [d for msg in msgs if (d := await self._receive(msg)) is not None]
        try:
            if len(deliveries) > 1 and await self._apply_together(deliveries):
                return
            for delivery in deliveries:
                await self._apply_alone(delivery)
        finally:
            for delivery in deliveries:
                delivery.close()

    async def _receive(self, msg: Msg) -> Delivery | None:
        """The message decoded, in its own log context and CONSUMER span; None when it was
        poison and went to the dead-letter subject."""
        if msg.metadata.num_delivered and msg.metadata.num_delivered > 1:
            self.stats.redelivered += 1
        headers = msg.headers or {}
        type_name = headers.get(HEADER_TYPE, "")
        message_id = inbox_id(headers)
        traceparent = headers.get(HEADER_TRACEPARENT)
        fields = {
            "trace_id": trace_id_of(traceparent),
            "message_id": message_id,
            "message_type": type_name,
        }
        try:
            message, handler = self._decode(type_name, message_id, msg.data)
        except PoisonMessageError as exc:
            with log_context(**fields):
                await self._dead_letter(msg, str(exc))
            return None
        order_id = getattr(message, "order_id", None)
        delivery = Delivery(msg, message_id, type_name, message, handler)
        delivery.open(
            log_context(**fields, order_id=order_id),
            tracing.consumed(msg.subject, message_id, type_name, traceparent),
        )
        delivery.context.run(tracing.tag_order, order_id or "")
        return delivery

    async def _apply_together(self, deliveries: list[Delivery]) -> bool:
        """One transaction for the batch; False, with nothing committed, if it failed."""

        def work(conn: Connection) -> list[bool]:
            return [d.context.run(self._apply, conn, d) for d in deliveries]

        try:
            applied = await self._db.write(work)
        except Exception as exc:
            log.warning(
                "consumer_batch_rolled_back",
                durable=self.sub.durable,
                messages=len(deliveries),
                error=repr(exc),
            )
            return False
        for delivery, was_applied in zip(deliveries, applied, strict=True):
            await self._acknowledge(delivery, was_applied)
        return True

    async def _apply_alone(self, delivery: Delivery) -> None:
        try:
            applied = await self._db.write(
                lambda conn: delivery.context.run(self._apply, conn, delivery)
            )
        except Exception as exc:
            delivery.span.record_exception(exc)
            delivery.span.set_status(StatusCode.ERROR, str(exc))
            await asyncio.create_task(self._failed(delivery.msg, exc), context=delivery.context)
            return
        await self._acknowledge(delivery, applied)

    async def _acknowledge(self, delivery: Delivery, applied: bool) -> None:
        """After the commit: ack, count, and end the message's span."""
        crash_point("consumer.after_commit", delivery.type_name)
        await delivery.msg.ack()
        self._first_failures.pop(delivery.msg.metadata.sequence.stream, None)
        if applied:
            self.stats.processed += 1
        else:
            self.stats.duplicates += 1
            delivery.context.run(log.info, "duplicate_message_skipped")
        delivery.close()

    def _decode(self, type_name: str, message_id: str, payload: bytes) -> tuple[Message, Handler]:
        if not message_id:
            raise PoisonMessageError(f"no {HEADER_MSG_ID} header")
        handler = self.sub.handlers.get(type_name)
        if handler is None:
            raise PoisonMessageError(f"no handler for message type {type_name!r}")
        try:
            return decode(type_name, payload), handler
        except UndecodableMessageError as exc:
            raise PoisonMessageError(str(exc)) from exc

    def _apply(self, conn: Connection, delivery: Delivery) -> bool:
        return apply_once(
            conn,
            self.sub.durable,
            delivery.message_id,
            delivery.type_name,
            delivery.message,
            delivery.handler,
        )

    async def _failed(self, msg: Msg, error: Exception) -> None:
        deliveries = msg.metadata.num_delivered
        self._first_failures.setdefault(msg.metadata.sequence.stream, time.time())
        if deliveries >= self._settings.consumer_max_deliver:
            await self._dead_letter(msg, f"failed {deliveries} times, last: {error!r}")
            return
        delay_s = min(0.2 * 2**deliveries, MAX_NAK_DELAY_S)
        log.warning("message_failed", error=repr(error), deliveries=deliveries, retry_in_s=delay_s)
        await msg.nak(delay=delay_s)

    async def _dead_letter(self, msg: Msg, reason: str) -> None:
        first_failure = self._first_failures.pop(msg.metadata.sequence.stream, time.time())
        headers = dead_letter_headers(
            dict(msg.headers or {}), reason, msg.subject, self.sub.durable, first_failure
        )
        await self._bus.js.publish(
            dead_letter_subject(self._settings.service), msg.data, headers=headers
        )
        await msg.term()
        self.stats.dead_lettered += 1
        log.error("message_dead_lettered", reason=reason, subject=msg.subject)
