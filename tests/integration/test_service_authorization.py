"""Who may do what, decided by the services themselves from the identity metadata the gateway
sets (runtime/caller.py), called straight on their ports as an operator would.

A call with no identity metadata is a trusted internal caller; one that names a customer is
held to that customer and the roles it carries. Real inventory, payments and JetStream.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from nats.aio.client import Client
from shop.inventory.v1 import inventory_service_pb2 as inv
from shop.inventory.v1 import inventory_service_pb2_grpc
from shop.payments.v1 import commands_pb2, events_pb2, payments_service_pb2_grpc
from shop.payments.v1 import payments_service_pb2 as pay

from tests.support.bus import StreamWatcher, send
from tests.support.grpc_client import CALL_TIMEOUT_S as T
from tests.support.grpc_client import channel
from tests.support.processes import ServiceRunner

Metadata = tuple[tuple[str, str], ...]
INTERNAL: Metadata = ()
ALICE: Metadata = (("x-customer-id", "alice"),)
BOB: Metadata = (("x-customer-id", "bob"), ("x-customer-roles", "W10="))  # roles: []
ADMIN: Metadata = (("x-customer-id", "shop-admin"), ("x-customer-roles", "WyJhZG1pbiJd"))


@dataclass
class Stubs:
    inventory: inventory_service_pb2_grpc.InventoryServiceStub
    payments: payments_service_pb2_grpc.PaymentsServiceStub


@pytest.fixture
async def stubs(services: ServiceRunner) -> AsyncIterator[Stubs]:
    inventory = services.start("inventory")
    payments = services.start("payments")
    async with channel(inventory.address) as i, channel(payments.address) as p:
        yield Stubs(
            inventory_service_pb2_grpc.InventoryServiceStub(i),
            payments_service_pb2_grpc.PaymentsServiceStub(p),
        )


def product(sku: str) -> inv.CreateProductRequest:
    return inv.CreateProductRequest(
        sku=sku, name="Mug", unit_price_minor=100, currency_code="EUR", initial_stock=5
    )


def account(customer_id: str) -> pay.OpenAccountRequest:
    return pay.OpenAccountRequest(
        customer_id=customer_id, credit_limit_minor=10_000, currency_code="EUR"
    )


def denied_role(error: grpc.aio.AioRpcError) -> str:
    """The role a PERMISSION_DENIED error says was missing (its google.rpc.ErrorInfo)."""
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert info.reason == "ROLE_REQUIRED"
    return str(info.metadata["role"])


async def test_a_customer_cannot_manage_products_but_admins_and_internal_callers_can(
    stubs: Stubs,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as create:
        await stubs.inventory.CreateProduct(product("A-1"), metadata=ALICE, timeout=T)
    by_admin = await stubs.inventory.CreateProduct(product("A-2"), metadata=ADMIN, timeout=T)
    by_internal = await stubs.inventory.CreateProduct(product("A-3"), metadata=INTERNAL, timeout=T)
    product_id = by_admin.product.product_id
    adjust = inv.AdjustStockRequest(product_id=product_id, delta=2, reason="delivery")
    with pytest.raises(grpc.aio.AioRpcError) as restock:
        await stubs.inventory.AdjustStock(adjust, metadata=ALICE, timeout=T)
    with pytest.raises(grpc.aio.AioRpcError) as reservation:
        await stubs.inventory.GetReservation(
            inv.GetReservationRequest(order_id="ord_1"), metadata=BOB, timeout=T
        )
    restocked = await stubs.inventory.AdjustStock(adjust, metadata=ADMIN, timeout=T)
    seen = await stubs.inventory.GetProduct(
        inv.GetProductRequest(product_id=product_id), metadata=ALICE, timeout=T
    )

    assert [denied_role(e.value) for e in (create, restock, reservation)] == ["admin"] * 3
    assert by_internal.product.sku == "A-3"
    assert restocked.product.stock_on_hand == 7
    assert seen.product.stock_on_hand == 7  # reading the catalogue needs no role


async def test_only_admins_and_internal_callers_open_accounts(stubs: Stubs) -> None:
    for who, customer in ((ALICE, "alice"), (ALICE, "bob"), (BOB, "bob")):
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stubs.payments.OpenAccount(account(customer), metadata=who, timeout=T)
        assert denied_role(denied.value) == "admin"

    opened = await stubs.payments.OpenAccount(account("alice"), metadata=ADMIN, timeout=T)
    internal = await stubs.payments.OpenAccount(account("bob"), metadata=INTERNAL, timeout=T)

    assert (opened.account.customer_id, internal.account.customer_id) == ("alice", "bob")


async def test_a_customer_sees_only_their_own_account(stubs: Stubs) -> None:
    for customer in ("alice", "bob"):
        await stubs.payments.OpenAccount(account(customer), timeout=T)

    async def read(who: Metadata, customer: str) -> grpc.StatusCode:
        try:
            await stubs.payments.GetAccount(
                pay.GetAccountRequest(customer_id=customer), metadata=who, timeout=T
            )
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    assert await read(ALICE, "alice") == grpc.StatusCode.OK
    assert await read(ALICE, "bob") == grpc.StatusCode.NOT_FOUND  # as if it did not exist
    assert await read(ALICE, "nobody") == grpc.StatusCode.NOT_FOUND
    assert await read(ADMIN, "bob") == grpc.StatusCode.OK
    assert await read(INTERNAL, "bob") == grpc.StatusCode.OK


async def test_a_payment_is_seen_by_its_customer_admins_and_internal_callers_only(
    stubs: Stubs, nats_client: Client
) -> None:
    await stubs.payments.OpenAccount(account("alice"), timeout=T)
    watcher = StreamWatcher(nats_client, "SHOP_PAYMENTS_EVENTS")
    await send(
        nats_client,
        commands_pb2.AuthorizePayment(
            command_id=str(uuid.uuid4()),
            order_id="ord_a",
            customer_id="alice",
            amount_minor=500,
            currency_code="EUR",
        ),
    )
    await watcher.wait_for(events_pb2.PaymentAuthorized, "ord_a")
    request = pay.GetPaymentRequest(order_id="ord_a")

    for who in (ALICE, ADMIN, INTERNAL):
        reply = await stubs.payments.GetPayment(request, metadata=who, timeout=T)
        assert reply.payment.customer_id == "alice"
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await stubs.payments.GetPayment(request, metadata=BOB, timeout=T)
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND


async def test_identity_metadata_without_a_customer_is_unauthenticated(stubs: Stubs) -> None:
    """Roles alone do not make an internal caller: only a call with no identity at all is."""
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stubs.payments.GetAccount(
            pay.GetAccountRequest(customer_id="alice"),
            metadata=(("x-customer-roles", "admin"),),
            timeout=T,
        )
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
