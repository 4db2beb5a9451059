"""Mutual TLS off loopback (docs/deploy.md, "Certificates"; docs/platform.md, "Callers").

Inventory listens on a non-loopback address of this machine with certificates from a CA the
test mints; the registry speaks mutual TLS on loopback; Envoy presents the gateway's
certificate upstream. Callers with no certificate, or one from another CA, never get a call
through; a certificate of ours that names no Concord process is UNAUTHENTICATED; customer
headers from anything but the gateway's certificate are PERMISSION_DENIED; the gateway's
certificate with them works, as does an internal call with a service's certificate, and an
order placed through Envoy is confirmed with every hop on mutual TLS (Envoy's span export to
the registry's span receiver included). Real registry, services,
PayGate, nats-server and Envoy.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from shop.inventory.v1 import inventory_service_pb2 as inv
from shop.inventory.v1 import inventory_service_pb2_grpc

from runtime import catalogue
from runtime.transport_security import TlsSettings, channel
from tests.e2e.conftest import wait_for_endpoint
from tests.support.gateway import admin_token, call, running_gateway, token_for
from tests.support.grpc_client import CALL_TIMEOUT_S as T
from tests.support.orders_through_gateway import place_order, stock_and_credit, wait_for_status
from tests.support.processes import RunningService, ServiceRunner
from tools.certs.authority import mint
from tools.certs.host import beyond_loopback
from tools.runner.gateway import Gateway
from tools.runner.ports import free_ports
from tools.runner.topology import Topology

PROCESSES = ["registry", "gateway", *(p.name for p in catalogue.CATALOGUE)]
ADMIN = (("x-customer-id", "shop-admin"), ("x-customer-roles", "WyJhZG1pbiJd"))  # ["admin"]
ALICE = (("x-customer-id", "alice"),)
STRANGER_URI = "spiffe://elsewhere.example/stranger"
SPAN_EXPORT_WAIT_S = 10.0
"""Envoy sends its spans at least once a second (gateway/envoy.yaml.tmpl, layered_runtime)."""


def host_address() -> str:
    """A non-loopback IPv4 address of this machine; the test needs one (container networking
    gives every machine it ran on one) and fails, rather than skips, without it."""
    found = beyond_loopback()
    assert found, "no non-loopback IPv4 address on this machine: cannot test mTLS off loopback"
    return str(found[0])


@dataclass(frozen=True)
class Certs:
    ours: dict[str, TlsSettings]
    foreign_gateway: TlsSettings
    """The gateway's name, signed by another CA."""
    stranger: TlsSettings
    """Signed by our CA, naming no Concord process."""


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    addresses = [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address(host_address())]
    ours = mint(tmp_path / "certs", PROCESSES, addresses, ["localhost"])
    stranger = mint(tmp_path / "certs", ["stranger"], addresses, [], uri=STRANGER_URI)
    foreign = mint(tmp_path / "foreign", ["gateway"], addresses, ["localhost"])
    return Certs(ours, foreign["gateway"], stranger["stranger"])


@dataclass(frozen=True)
class Secured:
    inventory: RunningService
    health_address: str


@pytest.fixture
def secured(services: ServiceRunner, certs: Certs) -> Iterator[Secured]:
    host = host_address()
    [health_port] = free_ports(1)
    services.registry_env.update(certs.ours["registry"].as_env())
    inventory = services.start(
        "inventory",
        env={
            **certs.ours["inventory"].as_env(),
            "CONCORD_INVENTORY_HOST": host,
            "CONCORD_INVENTORY_HEALTH_PORT": str(health_port),
        },
    )
    assert inventory.address.startswith(f"{host}:")
    yield Secured(inventory, f"{host}:{health_port}")


@asynccontextmanager
async def inventory_as(
    address: str, credentials: grpc.ChannelCredentials | TlsSettings | None
) -> AsyncIterator[inventory_service_pb2_grpc.InventoryServiceStub]:
    """A stub over plaintext (None), TLS without a client certificate (bare credentials), or
    mutual TLS with a certificate (TlsSettings)."""
    if credentials is None:
        ch = grpc.aio.insecure_channel(address)
    elif isinstance(credentials, TlsSettings):
        ch = channel(address, tls=credentials)
    else:
        ch = grpc.aio.secure_channel(address, credentials)
    async with ch:
        yield inventory_service_pb2_grpc.InventoryServiceStub(ch)


def product(sku: str) -> inv.CreateProductRequest:
    return inv.CreateProductRequest(
        sku=sku, name="Mug", unit_price_minor=100, currency_code="EUR", initial_stock=5
    )


async def refused(
    address: str,
    credentials: grpc.ChannelCredentials | TlsSettings | None,
    metadata: tuple[tuple[str, str], ...] = (),
) -> grpc.aio.AioRpcError:
    async with inventory_as(address, credentials) as inventory:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await inventory.CreateProduct(product("NO-1"), metadata=metadata, timeout=T)
    return error.value


async def test_a_caller_without_a_certificate_of_ours_gets_nothing_through(
    secured: Secured, certs: Certs
) -> None:
    address = secured.inventory.address
    ca_only = grpc.ssl_channel_credentials(certs.ours["inventory"].ca_file.read_bytes())
    for credentials in (None, ca_only, certs.foreign_gateway):
        error = await refused(address, credentials, ADMIN)
        # Refused in the TLS handshake (grpc's Python server can only require a client
        # certificate, not request one): the call never reaches the process.
        assert error.code() == grpc.StatusCode.UNAVAILABLE, (credentials, error)


async def test_a_certificate_of_ours_naming_no_concord_process_is_unauthenticated(
    secured: Secured, certs: Certs
) -> None:
    error = await refused(secured.inventory.address, certs.stranger)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "client certificate naming a Concord process" in str(error.details())


async def test_customer_headers_from_a_service_certificate_are_permission_denied(
    secured: Secured, certs: Certs
) -> None:
    for metadata in (ADMIN, ALICE):
        error = await refused(secured.inventory.address, certs.ours["orders"], metadata)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "accepted only from the gateway" in str(error.details())


async def test_the_gateway_certificate_carries_customers_and_a_service_certificate_is_internal(
    secured: Secured, certs: Certs
) -> None:
    address = secured.inventory.address
    async with inventory_as(address, certs.ours["gateway"]) as as_gateway:
        created = await as_gateway.CreateProduct(product("GW-1"), metadata=ADMIN, timeout=T)
        seen = await as_gateway.GetProduct(
            inv.GetProductRequest(product_id=created.product.product_id), metadata=ALICE, timeout=T
        )
        assert seen.product.sku == "GW-1"
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await as_gateway.CreateProduct(product("GW-2"), timeout=T)
        # The gateway speaks for customers only: without one it is not an internal caller.
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    async with inventory_as(address, certs.ours["orders"]) as internal:
        made = await internal.CreateProduct(product("SVC-1"), timeout=T)
        assert made.product.sku == "SVC-1"


async def test_health_answers_probes_without_a_certificate_on_the_health_port_only(
    secured: Secured, certs: Certs
) -> None:
    request = health_pb2.HealthCheckRequest(service="")
    async with grpc.aio.insecure_channel(secured.health_address) as plain:
        reply = await health_pb2_grpc.HealthStub(plain).Check(request, timeout=T)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    async with grpc.aio.insecure_channel(secured.inventory.address) as plain:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await health_pb2_grpc.HealthStub(plain).Check(request, timeout=T)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    async with channel(secured.inventory.address, tls=certs.ours["registry"]) as probe:
        reply = await health_pb2_grpc.HealthStub(probe).Check(request, timeout=T)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.fixture
def tls_gateway(
    secured: Secured, certs: Certs, services: ServiceRunner, topology: Topology
) -> Iterator[Gateway]:
    with running_gateway(topology, from_registry=True, tls=certs.ours["gateway"]) as gateway:
        wait_for_endpoint(gateway, "inventory", secured.inventory)
        yield gateway


def test_envoy_reaches_a_service_over_mutual_tls_end_to_end(tls_gateway: Gateway) -> None:
    body = {"sku": "MTLS-1", "name": "Mug", "unitPriceMinor": 1250, "currencyCode": "EUR"}
    created = call(tls_gateway, "POST", "/v1/products", token=admin_token(), body=body)
    assert created.status == 200, created.body
    product_id = created.json()["product"]["productId"]
    read = call(tls_gateway, "GET", f"/v1/products/{product_id}", token=token_for("alice"))
    assert (read.status, read.json()["product"]["sku"]) == (200, "MTLS-1"), read.body


@pytest.fixture
def secured_shop(services: ServiceRunner, certs: Certs, topology: Topology) -> Iterator[Gateway]:
    """Every process of the shop on mutual TLS, the services on the non-loopback address (PayGate,
    an outside system's stand-in, on loopback), Envoy in front with the gateway's certificate."""
    host = host_address()
    services.registry_env.update(certs.ours["registry"].as_env())
    for process in catalogue.start_order():
        env = certs.ours[process.name].as_env()
        if not process.standin:
            env[f"CONCORD_{process.name.upper()}_HOST"] = host
        services.start(process.name, env=env)
    with running_gateway(topology, from_registry=True, tls=certs.ours["gateway"]) as gateway:
        for process in catalogue.shop_services():
            wait_for_endpoint(gateway, process.name, services.running[process.name])
        yield gateway


def test_an_order_through_envoy_is_confirmed_with_every_hop_on_mutual_tls(
    secured_shop: Gateway,
) -> None:
    # Envoy -> orders, orders -> inventory (pricing, ServiceClient), payments -> PayGate,
    # every registration and resolution, and the registry's probes: all mutual TLS.
    token = token_for("alice")
    product_id = stock_and_credit(secured_shop, "alice")
    placed = place_order(secured_shop, token, product_id)
    wait_for_status(secured_shop, token, placed["orderId"], "ORDER_STATUS_CONFIRMED")
    # Envoy's spans went to the registry's span receiver on mutual TLS too, into the files.
    folder = secured_shop.topology.data_dir / "traces"
    deadline = time.monotonic() + SPAN_EXPORT_WAIT_S
    while not list(folder.glob("gateway.*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(folder.glob("gateway.*.jsonl")), sorted(p.name for p in folder.iterdir())
    assert secured_shop.stats()["cluster.otlp_collector.ssl.handshake"] >= 1
