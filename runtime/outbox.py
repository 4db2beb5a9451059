"""The transactional outbox: messages are written in the same transaction as the state change
that caused them, and a relay publishes them to JetStream afterwards.

A crash after commit and before publish loses nothing (the row waits); a crash after publish
and before the row is marked sent republishes it with the same `Nats-Msg-Id`, which JetStream's
duplicate window drops, and consumers' inboxes drop it beyond that window.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from dataclasses import dataclass

from google.protobuf.message import Message
from nats.js.api import PubAck

from runtime import tracing
from runtime.bus import Bus
from runtime.database import Connection, Database, announce_on_commit
from runtime.faults import crash_point
from runtime.logs import current_context, get_logger
from runtime.messages import (
    Envelope,
    message_id,
    new_traceparent,
    ordering_key,
    subject_for,
)
from runtime.metrics import Reading, gauge

log = get_logger(__name__)

MIGRATIONS = [
    """CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL UNIQUE,
        subject TEXT NOT NULL,
        type_name TEXT NOT NULL,
        payload BLOB NOT NULL,
        traceparent TEXT NOT NULL,
        created_at REAL NOT NULL,
        sent_at REAL
    )""",
    "CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (seq) WHERE sent_at IS NULL",
]

MAX_BACKOFF_S = 5.0
STAGED = "outbox.staged"
"""Announced by a write that staged a message: the relay wakes for it (not for its own marks)."""
DEFAULT_PUBLISH_WINDOW = 64
"""Publishes in flight at once (`CONCORD_OUTBOX_PUBLISH_WINDOW`); 1 waits for each ack."""


def stage(conn: Connection, message: Message, traceparent: str | None = None) -> Envelope:
    """Adds `message` to the outbox inside the caller's transaction."""
    if traceparent is None:
        traceparent = tracing.produced(
            subject_for(message), message_id(message), message.DESCRIPTOR.full_name
        )
    if traceparent is None:  # tracing off: still one trace id per causal chain, for the logs
        trace_id = current_context().get("trace_id")
        traceparent = new_traceparent(trace_id if isinstance(trace_id, str) else None)
    envelope = Envelope.wrap(message, traceparent)
    stage_envelope(conn, envelope)
    return envelope


def stage_envelope(conn: Connection, envelope: Envelope) -> None:
    """Adds a message already wrapped (its id, subject and traceparent fixed) to the outbox."""
    announce_on_commit(STAGED)
    conn.execute(
        "INSERT INTO outbox (message_id, subject, type_name, payload, traceparent,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (
            envelope.message_id,
            envelope.subject,
            envelope.type_name,
            envelope.payload,
            envelope.traceparent,
            time.time(),
        ),
    )


def _unsent(conn: Connection, limit: int) -> list[tuple[int, Envelope]]:
    rows = conn.execute(
        "SELECT seq, message_id, subject, type_name, payload, traceparent FROM outbox"
        " WHERE sent_at IS NULL ORDER BY seq LIMIT ?",
        (limit,),
    ).fetchall()
    return [
        (
            row["seq"],
            Envelope(
                row["message_id"],
                row["subject"],
                row["type_name"],
                row["payload"],
                row["traceparent"],
            ),
        )
        for row in rows
    ]


def _mark_sent(conn: Connection, seqs: list[int]) -> None:
    now = time.time()
    conn.executemany("UPDATE outbox SET sent_at = ? WHERE seq = ?", [(now, seq) for seq in seqs])


def prune_published(conn: Connection, published_before: float, limit: int) -> int:
    """Deletes up to `limit` rows published before then, oldest first; never an unsent one (it
    is the only copy of a message not yet on the stream). By `seq`, the primary key: published
    rows are the oldest, so the scan finds them first and needs no index of its own."""
    return conn.execute(
        "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox"
        " WHERE sent_at IS NOT NULL AND sent_at < ? ORDER BY seq LIMIT ?)",
        (published_before, limit),
    ).rowcount


def row_count(conn: Connection) -> int:
    """Every row, sent or not: bounded by the retention of published rows plus the backlog."""
    return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])


def pending_count(conn: Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0])


def _backlog(conn: Connection) -> tuple[int, float | None]:
    row = conn.execute(
        "SELECT count(*), min(created_at) FROM outbox WHERE sent_at IS NULL"
    ).fetchone()
    return int(row[0]), row[1]


async def readings(db: Database) -> list[Reading]:
    """The outbox's metrics: how many rows wait, and for how long the oldest has (0 when none):
    a relay that cannot reach NATS shows as a growing age long before anyone misses a message."""
    count, oldest = await db.read(_backlog)
    age_s = max(0.0, time.time() - oldest) if oldest is not None else 0.0
    return [
        gauge("concord_outbox_backlog", "Outbox rows not yet published to JetStream", count),
        gauge(
            "concord_outbox_oldest_unsent_age_seconds",
            "Age of the oldest unpublished outbox row; 0 when the outbox is empty",
            age_s,
        ),
    ]


@dataclass
class _InFlight:
    """A published outbox row whose ack has not been awaited yet."""

    seq: int
    envelope: Envelope
    key: str | None
    ack: asyncio.Future[PubAck]
    sent_at: float


class _Window:
    """Up to `size` publishes in flight, awaited oldest first. A message waits to be sent while
    another of its ordering key (its aggregate on its stream) is unacknowledged: if that one
    is lost (a leader election), the later one must not reach the stream before it."""

    def __init__(self, bus: Bus, size: int) -> None:
        self._bus = bus
        self._size = size
        self._in_flight: deque[_InFlight] = deque()
        self._keys: Counter[str | None] = Counter()

    def must_wait(self, key: str | None) -> bool:
        if not self._in_flight:
            return False
        return (
            len(self._in_flight) >= self._size
            or key is None
            or key in self._keys
            or (None in self._keys)
        )

    async def send(self, seq: int, envelope: Envelope, key: str | None) -> None:
        sent_at = time.monotonic()
        ack = await self._bus.send(envelope)
        self._in_flight.append(_InFlight(seq, envelope, key, ack, sent_at))
        self._keys[key] += 1

    def __bool__(self) -> bool:
        return bool(self._in_flight)

    async def oldest_acknowledged(self) -> int:
        """Waits for the oldest publish's ack and returns its row; raises what the publish met
        (the window is then abandoned: `abandon`)."""
        oldest = self._in_flight[0]
        await self._bus.acknowledged(oldest.ack, oldest.sent_at)
        self._in_flight.popleft()
        self._keys[oldest.key] -= 1
        if not self._keys[oldest.key]:
            del self._keys[oldest.key]
        crash_point("outbox.after_publish", oldest.envelope.type_name)
        if self._in_flight:  # acknowledged, later ones still in flight, nothing marked yet
            crash_point("outbox.mid_window", oldest.envelope.type_name)
        return oldest.seq

    def abandon(self) -> None:
        """Stops waiting for the rest: their rows stay unsent and the next round republishes
        them with the same message ids (JetStream drops those it already stored)."""
        for pending in self._in_flight:
            if pending.ack.done():
                if not pending.ack.cancelled():
                    pending.ack.exception()  # retrieved, so asyncio does not log it as lost
            else:
                pending.ack.cancel()
        self._in_flight.clear()
        self._keys.clear()


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        bus: Bus,
        poll_interval_s: float,
        batch_size: int,
        publish_window: int = DEFAULT_PUBLISH_WINDOW,
    ) -> None:
        self._db = db
        self._bus = bus
        self._poll_interval_s = poll_interval_s
        self._batch_size = batch_size
        self._publish_window = max(1, publish_window)
        self._wake = asyncio.Event()
        db.after_write(self._wake.set, STAGED)

    async def run(self) -> None:
        backoff_s = 0.1
        while True:
            # Cleared before reading, not after publishing: a write that commits while a batch
            # is being published must wake the next round, not wait out the poll interval.
            self._wake.clear()
            try:
                published = await self.publish_pending()
                backoff_s = 0.1
            except Exception as exc:  # NATS down or slow: keep the rows, try again later
                log.warning("outbox_publish_failed", error=str(exc), retry_in_s=backoff_s)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, MAX_BACKOFF_S)
                continue
            if published < self._batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval_s)

    async def publish_pending(self) -> int:
        """Publishes one batch in `seq` order with up to `publish_window` acks outstanding,
        awaited in order, and marks sent exactly the acknowledged prefix, even when a later
        publish fails (then raises what it met): a row after the first failure stays unsent,
        whether or not JetStream stored it, and is republished under the same message id."""
        batch = await self._db.read(lambda conn: _unsent(conn, self._batch_size))
        window = _Window(self._bus, self._publish_window)
        sent: list[int] = []
        try:
            for seq, envelope in batch:
                key = ordering_key(envelope) if self._publish_window > 1 else None
                while window.must_wait(key):
                    sent.append(await window.oldest_acknowledged())
                await window.send(seq, envelope, key)
            while window:
                sent.append(await window.oldest_acknowledged())
        finally:
            window.abandon()
            if sent:
                await self._db.write(lambda conn: _mark_sent(conn, sent))
        return len(sent)

    async def flush(self, timeout_s: float) -> bool:
        """Publishes everything pending, for a graceful shutdown; False if time ran out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await self._db.read(pending_count) == 0:
                return True
            try:
                await asyncio.wait_for(
                    self.publish_pending(), timeout=max(0.1, deadline - time.monotonic())
                )
            except Exception as exc:
                log.warning("outbox_flush_failed", error=str(exc))
                await asyncio.sleep(0.2)
        return False
