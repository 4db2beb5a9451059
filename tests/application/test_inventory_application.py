"""Inventory's use cases in-process: feed a command, an event or an API call, then check the
stock, the reservation and the messages staged in the outbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from shop.inventory.v1 import commands_pb2, events_pb2, inventory_pb2
from shop.orders.v1 import events_pb2 as order_events_pb2

from runtime import paging
from runtime.caller import INTERNAL, Caller, Role
from runtime.consumer import Subscription
from runtime.database import Database
from runtime.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    NotFoundError,
    PermissionDeniedError,
)
from runtime.events import metadata_of
from runtime.ids import new_message_id
from services.inventory import consumers, store
from services.inventory.application import Inventory
from services.inventory.domain import NewProduct, Product, ReservationStatus
from tests.support.application import deliver, migrated_database, staged_messages, staged_rows

ALICE = Caller("alice")
ADMIN = Caller("root", frozenset({Role.ADMIN}))


@pytest.fixture
async def db(tmp_path: Path, database_url: Callable[[str], str | None]) -> AsyncIterator[Database]:
    async with migrated_database(
        tmp_path, "inventory", store.MIGRATIONS, database_url("inventory")
    ) as db:
        yield db


@pytest.fixture
async def inventory(db: Database) -> Inventory:
    return Inventory(db, paging.PageTokens(await db.read(paging.load_key)))


@pytest.fixture
def subscriptions(inventory: Inventory) -> list[Subscription]:
    return consumers.subscriptions(inventory)


async def product(inventory: Inventory, sku: str = "sku-1", stock: int = 10) -> Product:
    return await inventory.create_product(INTERNAL, NewProduct(sku, sku.upper(), 250, "USD", stock))


def reserve(order_id: str, *lines: tuple[str, int]) -> commands_pb2.ReserveStock:
    return commands_pb2.ReserveStock(
        command_id=new_message_id(),
        order_id=order_id,
        lines=[inventory_pb2.StockLine(product_id=p, quantity=q) for p, q in lines],
    )


def cancellation(order_id: str) -> order_events_pb2.OrderCancellationRequested:
    return order_events_pb2.OrderCancellationRequested(
        event_id=new_message_id(), order_id=order_id, reason="changed my mind"
    )


async def test_created_product_is_stocked_and_announced(db: Database, inventory: Inventory) -> None:
    created = await inventory.create_product(ADMIN, NewProduct("mug", "Mug", 900, "EUR", 7))
    assert (await inventory.get_product(created.product_id)) == created
    assert (created.stock_on_hand, created.stock_available, created.version) == (7, 7, 1)
    [row] = await staged_rows(db)
    assert row.subject == "shop.inventory.events.ProductCreated"
    assert isinstance(row.message, events_pb2.ProductCreated)
    assert row.message == events_pb2.ProductCreated(
        event_id=row.message_id,
        product_id=created.product_id,
        version=1,
        occur_time=row.message.occur_time,
        sku="mug",
        name="Mug",
        unit_price_minor=900,
        currency_code="EUR",
        stock_on_hand=7,
    )


async def test_customers_may_not_touch_the_catalogue_and_nothing_is_staged(
    db: Database, inventory: Inventory
) -> None:
    with pytest.raises(PermissionDeniedError):
        await inventory.create_product(ALICE, NewProduct("mug", "Mug", 900, "EUR", 7))
    created = await product(inventory)
    with pytest.raises(PermissionDeniedError):
        await inventory.adjust_stock(ALICE, created.product_id, 5, "found more")
    with pytest.raises(PermissionDeniedError):
        await inventory.get_reservation(ALICE, "ord_1")
    assert len(await staged_messages(db)) == 1


async def test_a_second_product_with_the_same_sku_is_refused(
    db: Database, inventory: Inventory
) -> None:
    await product(inventory, "sku-1")
    with pytest.raises(AlreadyExistsError):
        await product(inventory, "sku-1")
    assert len(await staged_messages(db)) == 1


async def test_adjusted_stock_is_announced_with_the_new_count(
    db: Database, inventory: Inventory
) -> None:
    created = await product(inventory, stock=10)
    adjusted = await inventory.adjust_stock(INTERNAL, created.product_id, -4, "breakage")
    assert (adjusted.stock_on_hand, adjusted.version) == (6, 2)
    event = (await staged_messages(db))[-1]
    assert isinstance(event, events_pb2.StockAdjusted)
    assert (event.product_id, event.version, event.delta, event.reason, event.stock_on_hand) == (
        created.product_id,
        2,
        -4,
        "breakage",
        6,
    )


async def test_stock_cannot_be_adjusted_below_what_is_reserved(
    db: Database, inventory: Inventory, subscriptions: list[Subscription]
) -> None:
    created = await product(inventory, stock=10)
    await deliver(db, subscriptions, reserve("ord_1", (created.product_id, 8)))
    staged = len(await staged_messages(db))
    with pytest.raises(FailedPreconditionError):
        await inventory.adjust_stock(INTERNAL, created.product_id, -3, "breakage")
    with pytest.raises(NotFoundError):
        await inventory.adjust_stock(INTERNAL, "prd_missing", 1, "found")
    assert (await inventory.get_product(created.product_id)).stock_on_hand == 10
    assert len(await staged_messages(db)) == staged


async def test_batch_get_and_list_products(inventory: Inventory) -> None:
    a, b, c = [await product(inventory, f"sku-{n}") for n in range(3)]
    found, missing = await inventory.batch_get_products([c.product_id, "prd_x"], True)
    assert ([p.product_id for p in found], missing) == ([c.product_id], ["prd_x"])
    with pytest.raises(NotFoundError):
        await inventory.batch_get_products([a.product_id, "prd_x"], False)
    first, token = await inventory.list_products(2, "")
    rest, last = await inventory.list_products(2, token)
    listed = [p.product_id for p in first + rest]
    assert listed == sorted(p.product_id for p in (a, b, c)) and last == ""


async def test_reserve_stock_holds_every_line_and_answers_stock_reserved(
    db: Database, inventory: Inventory, subscriptions: list[Subscription]
) -> None:
    a, b = await product(inventory, "a", 5), await product(inventory, "b", 5)
    cmd = reserve("ord_1", (a.product_id, 2), (b.product_id, 1), (a.product_id, 1))
    assert await deliver(db, subscriptions, cmd)
    assert (await inventory.get_product(a.product_id)).stock_available == 2
    assert (await inventory.get_product(b.product_id)).stock_available == 4
    reservation = await inventory.get_reservation(INTERNAL, "ord_1")
    assert (reservation.status, reservation.version) == (ReservationStatus.RESERVED, 1)
    answer = (await staged_messages(db))[-1]
    assert isinstance(answer, events_pb2.StockReserved)
    assert (answer.order_id, answer.version, answer.causation_id) == ("ord_1", 1, cmd.command_id)
    assert sorted((x.product_id, x.quantity) for x in answer.lines) == sorted(
        [(a.product_id, 3), (b.product_id, 1)]
    )


async def test_redelivered_reserve_stock_changes_nothing_and_stages_nothing(
    db: Database, inventory: Inventory, subscriptions: list[Subscription]
) -> None:
    a = await product(inventory, "a", 5)
    cmd = reserve("ord_1", (a.product_id, 2))
    assert await deliver(db, subscriptions, cmd)
    staged = await staged_messages(db)
    assert not await deliver(db, subscriptions, cmd)
    assert (await inventory.get_product(a.product_id)).stock_reserved == 2
    assert await staged_messages(db) == staged


async def test_repeated_reserve_stock_for_an_order_holds_once_and_answers_the_same(
    db: Database, inventory: Inventory, subscriptions: list[Subscription]
) -> None:
    a = await product(inventory, "a", 5)
    await deliver(db, subscriptions, reserve("ord_1", (a.product_id, 2)))
    again = reserve("ord_1", (a.product_id, 2))
    await deliver(db, subscriptions, again)
    assert (await inventory.get_product(a.product_id)).stock_reserved == 2
    first, second = (await staged_messages(db))[-2:]
    assert isinstance(first, events_pb2.StockReserved)
    assert isinstance(second, events_pb2.StockReserved) and second.causation_id == again.command_id
    assert list(second.lines) == list(first.lines)


async def test_insufficient_stock_reserves_nothing_and_names_the_short_products(
    db: Database, inventory: Inventory, subscriptions: list[Subscription]
) -> None:
    a, b = await product(inventory, "a", 5), await product(inventory, "b", 1)
    cmd = reserve("ord_1", (a.product_id, 2), (b.product_id, 3), ("prd_gone", 1))
    await deliver(db, subscriptions, cmd)
    assert (await inventory.get_product(a.product_id)).stock_reserved == 0
    assert (await inventory.get_product(b.product_id)).stock_reserved == 0
    reservation = await inventory.get_reservation(INTERNAL, "ord_1")
    assert reservation.status is ReservationStatus.REJECTED
    answer = (await staged_messages(db))[-1]
    assert isinstance(answer, events_pb2.StockUnavailable)
    assert sorted(answer.product_ids) == sorted([b.product_id, "prd_gone"])
    assert "insufficient stock" in answer.reason and answer.causation_id == cmd.command_id


async def test_release_returns_reserved_stock(
    db: Database, inventory: Inventory, subscriptions: list[Subscription]
) -> None:
    a = await product(inventory, "a", 5)
    await deliver(db, subscriptions, reserve("ord_1", (a.product_id, 2)))
    release = commands_pb2.ReleaseStock(
        command_id=new_message_id(), order_id="ord_1", reason="payment declined"
    )
    await deliver(db, subscriptions, release)
    assert (await inventory.get_product(a.product_id)).stock_available == 5
    reservation = await inventory.get_reservation(INTERNAL, "ord_1")
    assert (reservation.status, reservation.version) == (ReservationStatus.RELEASED, 2)
    answer = (await staged_messages(db))[-1]
    assert isinstance(answer, events_pb2.StockReleased)
    assert (answer.reason, answer.version, answer.causation_id) == (
        "payment declined",
        2,
        release.command_id,
    )
    assert [(x.product_id, x.quantity) for x in answer.lines] == [(a.product_id, 2)]


async def test_commit_takes_stock_off_the_shelf_once(
    db: Database, inventory: Inventory, subscriptions: list[Subscription]
) -> None:
    a = await product(inventory, "a", 5)
    await deliver(db, subscriptions, reserve("ord_1", (a.product_id, 2)))
    for _ in range(2):  # a repeated command (new id) answers again and moves nothing
        commit = commands_pb2.CommitReservation(command_id=new_message_id(), order_id="ord_1")
        await deliver(db, subscriptions, commit)
    stocked = await inventory.get_product(a.product_id)
    assert (stocked.stock_on_hand, stocked.stock_reserved) == (3, 0)
    answers = (await staged_messages(db))[-2:]
    assert [(type(m), metadata_of(m).version) for m in answers] == [
        (events_pb2.ReservationCommitted, 2)
    ] * 2


async def test_commit_without_a_reservation_stages_nothing(
    db: Database, subscriptions: list[Subscription]
) -> None:
    commit = commands_pb2.CommitReservation(command_id=new_message_id(), order_id="ord_1")
    await deliver(db, subscriptions, commit)
    assert await staged_messages(db) == []


async def test_order_cancellation_returns_sold_stock(
    db: Database, inventory: Inventory, subscriptions: list[Subscription]
) -> None:
    a = await product(inventory, "a", 5)
    await deliver(db, subscriptions, reserve("ord_1", (a.product_id, 2)))
    commit = commands_pb2.CommitReservation(command_id=new_message_id(), order_id="ord_1")
    await deliver(db, subscriptions, commit)
    event = cancellation("ord_1")
    assert await deliver(db, subscriptions, event)
    assert not await deliver(db, subscriptions, event)  # redelivered: nothing returns twice
    stocked = await inventory.get_product(a.product_id)
    assert (stocked.stock_on_hand, stocked.stock_reserved) == (5, 0)
    answer = (await staged_messages(db))[-1]
    assert isinstance(answer, events_pb2.StockReleased)
    assert (answer.reason, answer.causation_id) == (
        "order cancelled: changed my mind",
        event.event_id,
    )
    assert [(x.product_id, x.quantity) for x in answer.lines] == [(a.product_id, 2)]


async def test_a_reserve_after_the_cancellation_holds_nothing(
    db: Database, inventory: Inventory, subscriptions: list[Subscription]
) -> None:
    a = await product(inventory, "a", 5)
    await deliver(db, subscriptions, cancellation("ord_1"))
    released = (await staged_messages(db))[-1]
    assert isinstance(released, events_pb2.StockReleased) and list(released.lines) == []
    await deliver(db, subscriptions, reserve("ord_1", (a.product_id, 2)))
    assert (await inventory.get_product(a.product_id)).stock_reserved == 0
    answer = (await staged_messages(db))[-1]
    assert isinstance(answer, events_pb2.StockUnavailable)
    assert answer.reason == "order cancelled: changed my mind"
