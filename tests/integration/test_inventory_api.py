"""InventoryService through a real gRPC channel: each RPC's happy path and each error class."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from shop.inventory.v1 import inventory_service_pb2 as pb
from shop.inventory.v1 import inventory_service_pb2_grpc

from tests.support.grpc_client import CALL_TIMEOUT_S, channel, field_violations
from tests.support.processes import ServiceRunner

Stub = inventory_service_pb2_grpc.InventoryServiceStub

T = CALL_TIMEOUT_S


@pytest.fixture
async def inventory(services: ServiceRunner) -> AsyncIterator[Stub]:
    running = services.start("inventory")
    async with channel(running.address) as ch:
        yield inventory_service_pb2_grpc.InventoryServiceStub(ch)


def product_request(sku: str = "SKU-1", **overrides: object) -> pb.CreateProductRequest:
    fields: dict[str, object] = {
        "sku": sku,
        "name": "Widget",
        "unit_price_minor": 1250,
        "currency_code": "EUR",
        "initial_stock": 10,
    }
    fields.update(overrides)
    return pb.CreateProductRequest(**fields)  # type: ignore[arg-type]


async def test_create_get_and_adjust_a_product(inventory: Stub) -> None:
    created = (await inventory.CreateProduct(product_request(), timeout=T)).product
    assert created.product_id.startswith("prd_")
    assert (created.stock_on_hand, created.stock_available) == (10, 10)

    got = (
        await inventory.GetProduct(pb.GetProductRequest(product_id=created.product_id), timeout=T)
    ).product
    assert got.sku == "SKU-1" and got.unit_price_minor == 1250 and got.currency_code == "EUR"

    adjusted = await inventory.AdjustStock(
        pb.AdjustStockRequest(product_id=created.product_id, delta=-4, reason="damaged"), timeout=T
    )
    assert adjusted.product.stock_on_hand == 6


async def test_list_products_pages_through_everything(inventory: Stub) -> None:
    for i in range(5):
        await inventory.CreateProduct(product_request(sku=f"SKU-{i}"), timeout=T)
    seen: list[str] = []
    token = ""
    while True:
        page = await inventory.ListProducts(
            pb.ListProductsRequest(page_size=2, page_token=token), timeout=T
        )
        assert len(page.products) <= 2
        seen += [p.sku for p in page.products]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == [f"SKU-{i}" for i in range(5)]


async def test_batch_get_prices_in_the_order_asked(inventory: Stub) -> None:
    a = (
        await inventory.CreateProduct(product_request(sku="A", unit_price_minor=100), timeout=T)
    ).product
    b = (
        await inventory.CreateProduct(product_request(sku="B", unit_price_minor=200), timeout=T)
    ).product
    reply = await inventory.BatchGetProducts(
        pb.BatchGetProductsRequest(product_ids=[b.product_id, a.product_id]), timeout=T
    )
    assert [p.unit_price_minor for p in reply.products] == [200, 100]


async def test_batch_get_with_allow_missing_lists_unknown_ids_in_the_response(
    inventory: Stub,
) -> None:
    known = (await inventory.CreateProduct(product_request(sku="K"), timeout=T)).product
    reply = await inventory.BatchGetProducts(
        pb.BatchGetProductsRequest(
            product_ids=["prd_x", known.product_id, "prd_y"], allow_missing=True
        ),
        timeout=T,
    )
    assert [p.product_id for p in reply.products] == [known.product_id]
    assert list(reply.missing_product_ids) == ["prd_x", "prd_y"]


async def test_duplicate_sku_is_already_exists(inventory: Stub) -> None:
    await inventory.CreateProduct(product_request(), timeout=T)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await inventory.CreateProduct(product_request(), timeout=T)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "SKU-1" in (err.value.details() or "")


async def test_unknown_products_are_not_found_by_name(inventory: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await inventory.GetProduct(pb.GetProductRequest(product_id="prd_missing"), timeout=T)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await inventory.BatchGetProducts(
            pb.BatchGetProductsRequest(product_ids=["prd_x", "prd_y"]), timeout=T
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "prd_x" in (err.value.details() or "") and "prd_y" in (err.value.details() or "")


async def test_errors_about_many_ids_reach_a_default_client_whole(inventory: Stub) -> None:
    """Without a cap, one violation (or one name) per id outgrows the 8 KiB of metadata a
    default client accepts, and the caller sees RESOURCE_EXHAUSTED instead of the error."""
    for ids in ([""] * 150, ["p" * 500] * 150):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await inventory.BatchGetProducts(pb.BatchGetProductsRequest(product_ids=ids), timeout=T)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        violations = field_violations(err.value)
        assert "product_ids" in violations and "product_ids[0]" in violations
        assert any("more violations not listed" in d for d in violations.values())

    unknown = [f"prd_{n:060}" for n in range(100)]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await inventory.BatchGetProducts(pb.BatchGetProductsRequest(product_ids=unknown), timeout=T)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    status = rpc_status.from_call(err.value)  # type: ignore[arg-type]
    resource = error_details_pb2.ResourceInfo()
    assert status is not None and status.details[0].Unpack(resource)
    assert resource.resource_name.startswith(unknown[0])


async def test_malformed_product_names_every_bad_field(inventory: Stub) -> None:
    bad = product_request(
        sku="", name="x" * 5000, unit_price_minor=-1, currency_code="euro", initial_stock=-3
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await inventory.CreateProduct(bad, timeout=T)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(err.value)) == {
        "sku",
        "name",
        "unit_price_minor",
        "currency_code",
        "initial_stock",
    }


async def test_removing_reserved_or_missing_stock_is_refused(inventory: Stub) -> None:
    product = (await inventory.CreateProduct(product_request(initial_stock=2), timeout=T)).product
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await inventory.AdjustStock(
            pb.AdjustStockRequest(product_id=product.product_id, delta=-3, reason="audit"),
            timeout=T,
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await inventory.AdjustStock(
            pb.AdjustStockRequest(product_id=product.product_id, delta=0, reason=""), timeout=T
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(err.value)) == {"delta", "reason"}


async def test_bad_page_arguments_are_invalid(inventory: Stub) -> None:
    for request in (
        pb.ListProductsRequest(page_size=1000),
        pb.ListProductsRequest(page_token="!!not-a-token"),
        # the old unsigned format, base64 of a JSON position: a position anyone could forge
        pb.ListProductsRequest(page_token=base64.urlsafe_b64encode(b'["prd_a"]').decode()),
        pb.ListProductsRequest(page_token=base64.urlsafe_b64encode(b"[NaN]").decode()),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await inventory.ListProducts(request, timeout=T)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_wrong_wire_types_are_rejected_not_crashed(services: ServiceRunner) -> None:
    """Bytes that are not a CreateProductRequest: the server answers, it does not fall over."""
    running = services.start("inventory")
    async with channel(running.address) as ch:
        raw = ch.unary_unary("/shop.inventory.v1.InventoryService/CreateProduct")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await raw(b"\xff\xff\xff\xff", timeout=T)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        stub = inventory_service_pb2_grpc.InventoryServiceStub(ch)
        reply = await stub.ListProducts(pb.ListProductsRequest(), timeout=T)
        assert list(reply.products) == []
