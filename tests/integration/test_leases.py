"""Leases on each storage backend, two holders on one database as two instances would be: one
holds it at a time, renewing keeps it, and when the holder stops renewing (killed) the other
takes it once it has expired; a released lease is taken at once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from runtime import lease
from runtime.database import Database
from runtime.lease import Lease
from runtime.storage import database_at

TTL_S = 1.0

pytestmark = pytest.mark.usefixtures("storage")


@pytest.fixture
async def instances(
    tmp_path: Path, database_url: Callable[[str], str | None]
) -> AsyncIterator[tuple[Database, Database]]:
    url = database_url("svc")
    dbs = (database_at(tmp_path / "svc.sqlite3", url), database_at(tmp_path / "svc.sqlite3", url))
    for db in dbs:
        await db.open({"leases": lease.MIGRATIONS})
    yield dbs
    for db in dbs:
        await db.close()


async def test_one_holder_at_a_time_and_takeover_after_expiry(
    instances: tuple[Database, Database],
) -> None:
    first = Lease(instances[0], "relay", "first", TTL_S)
    second = Lease(instances[1], "relay", "second", TTL_S)
    assert await first.renew()
    assert not await second.renew()
    assert await first.renew()  # renewing keeps it
    assert not await second.renew()
    # `first` stops renewing, as a killed process does; `second` gets it once it expired.
    while not await second.renew():
        pass
    assert second.held
    assert not await first.renew()  # the old holder cannot take it back while it is renewed


async def test_a_released_lease_is_taken_at_once(instances: tuple[Database, Database]) -> None:
    first = Lease(instances[0], "worker", "first", 60.0)
    second = Lease(instances[1], "worker", "second", 60.0)
    assert await first.renew()
    assert not await second.renew()
    await first.release()
    assert not first.held
    assert await second.renew()
