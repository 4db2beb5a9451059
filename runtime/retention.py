"""The retention job: what a service's database keeps, bounded, so steady load is steady disk.

Every `CONCORD_RETENTION_INTERVAL_S`, on one instance of the service (the `retention` lease):
- published outbox rows older than `CONCORD_OUTBOX_RETENTION_S` are deleted; unsent ones never;
- inbox entries older than the inbox retention are deleted: that retention is at least as long
  as any copy of their message can come back (settings.required_inbox_retention_s), so pruning
  never lets a duplicate through;
- the database does its own housekeeping (`Database.maintain`: a WAL checkpoint on SQLite).
Deletes run in transactions of `CONCORD_RETENTION_BATCH_SIZE` rows, so a prune never holds the
writer for long and the service's own writes go between batches. The streams bound themselves
(runtime/streams.py); this job bounds the database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from runtime import consumer, outbox
from runtime.database import Connection, Database
from runtime.logs import get_logger
from runtime.metrics import Reading, counter, gauge
from runtime.settings import RetentionSettings

log = get_logger(__name__)

OUTBOX = "outbox"
INBOX = "inbox"

Prune = Callable[[Connection, float, int], int]
"""(connection, delete what is older than this epoch time, at most this many) -> deleted."""


async def _in_batches(db: Database, prune: Prune, before: float, batch_size: int) -> int:
    total = 0
    while True:
        deleted = await db.write(lambda conn: prune(conn, before, batch_size))
        total += deleted
        if deleted < batch_size:
            return total


async def prune_outbox(db: Database, retention_s: float, batch_size: int, now: float) -> int:
    """Deletes the rows published more than `retention_s` before `now`; returns how many."""
    return await _in_batches(db, outbox.prune_published, now - retention_s, batch_size)


async def prune_inbox(db: Database, retention_s: float, batch_size: int, now: float) -> int:
    """Deletes the inbox entries processed more than `retention_s` before `now`."""
    return await _in_batches(db, consumer.prune_inbox, now - retention_s, batch_size)


@dataclass(frozen=True)
class Pruned:
    """One run: rows deleted from each store, and the outbox's rows left after it."""

    outbox: int
    inbox: int
    outbox_left: int
    """The outbox's rows after the run, counted: bounded by the outbox retention (an hour of
    messages by default). The inbox is not counted: it keeps weeks of entries (as long as the
    streams can redeliver), hundreds of millions of rows at the shop's rate, and counting them
    every run would read them all; its oldest entry's age says whether pruning keeps up."""


@dataclass
class RetentionStats:
    runs: int = 0
    pruned: dict[str, int] = field(default_factory=lambda: {OUTBOX: 0, INBOX: 0})
    last: Pruned | None = None


class Retention:
    def __init__(self, db: Database, settings: RetentionSettings) -> None:
        self._db = db
        self._settings = settings
        self.stats = RetentionStats()

    async def run(self) -> None:
        """Prunes every interval until cancelled. The first run waits one interval: after a
        restart the consumers first take back what they had not acked."""
        while True:
            await asyncio.sleep(self._settings.interval_s)
            try:
                await self.run_once(time.time())
            except Exception as exc:  # the database busy or away: the next run catches up
                log.warning("retention_failed", error=str(exc) or type(exc).__name__)

    async def run_once(self, now: float) -> Pruned:
        s = self._settings
        pruned_outbox = await prune_outbox(self._db, s.outbox_retention_s, s.batch_size, now)
        pruned_inbox = await prune_inbox(self._db, s.inbox_retention_s, s.batch_size, now)
        maintenance = await self._db.maintain()
        outbox_left = await self._db.read(outbox.row_count)
        result = Pruned(pruned_outbox, pruned_inbox, outbox_left)
        self.stats.runs += 1
        self.stats.pruned[OUTBOX] += pruned_outbox
        self.stats.pruned[INBOX] += pruned_inbox
        self.stats.last = result
        log.info(
            "retention_pruned",
            outbox_pruned=pruned_outbox,
            inbox_pruned=pruned_inbox,
            outbox_rows=outbox_left,
            **maintenance,
        )
        return result

    async def retention_readings(self) -> list[Reading]:
        """Rows pruned by this process, outbox rows left after its last run (the holder of the lease
        reports them), and the age of the oldest inbox entry, read now: flat at about the inbox
        retention once pruning keeps up."""
        oldest = await self._db.read(consumer.oldest_inbox_entry)
        result = [
            gauge(
                "concord_inbox_oldest_entry_age_seconds",
                "Age of the oldest inbox entry; about the inbox retention once pruning runs",
                max(0.0, time.time() - oldest) if oldest is not None else 0.0,
            ),
            counter("concord_retention_runs", "Retention job runs", self.stats.runs),
        ]
        for store, pruned in self.stats.pruned.items():
            result.append(
                counter(
                    "concord_retention_pruned", "Rows deleted by retention", pruned, store=store
                )
            )
        if self.stats.last is not None:
            result.append(
                gauge(
                    "concord_retention_rows",
                    "Rows in the store after the last retention run",
                    self.stats.last.outbox_left,
                    store=OUTBOX,
                )
            )
        return result
