"""Contracts in discovery, through the real gateway: an inventory instance whose contract breaks
the latest published version registers, is listed with buf's findings, and gets no request,
neither through Envoy nor through Resolve; one with an unpublished compatible addition serves.

The repository's contracts are published first (v1), so the good instance, built from them,
serves "v1". The other instance is the same real inventory program started with
CONCORD_CONTRACT_IMAGE_PATH (test only): it registers the image of an edited copy of proto/,
as a stale or rogue build would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from concord.registry.v1 import (
    contracts_service_pb2,
    contracts_service_pb2_grpc,
    discovery_service_pb2,
    discovery_service_pb2_grpc,
    registry_pb2,
)

from runtime.contract_fingerprint import IMAGE_PATH_ENV
from tests.support.buf_workspace import copy_buf_workspace
from tests.support.gateway import Reply, admin_token, call
from tests.support.polling import until
from tests.support.processes import RunningService, ServiceRunner, live_addresses
from tools.devstack import registry_cli
from tools.runner.gateway import Gateway
from tools.runner.ports import free_port

CLUSTER = "inventory"
SERVICE = "shop.inventory.v1.InventoryService"
SERVICE_FILE = "proto/shop/inventory/v1/inventory_service.proto"
GET_PRODUCT_RESPONSE = """message GetProductResponse {
  // The product.
  Product product = 1;
}"""
RENUMBERED = GET_PRODUCT_RESPONSE.replace("product = 1;", "product = 7;")
"""A breaking edit: clients built from v1 read field 1, this instance writes field 7."""
ADDED = GET_PRODUCT_RESPONSE.replace(
    "}", "  // When the product was last restocked, as text.\n  string restocked = 2;\n}"
)
"""A compatible addition not yet published."""
VERDICT_TIMEOUT_S = 30.0
READS = 20


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return copy_buf_workspace(tmp_path / "ws")


@pytest.fixture
def registry_channel(services: ServiceRunner) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(services.registry_address) as channel:
        yield channel


def image(workspace: Path, name: str, old: str = "", new: str = "") -> Path:
    """buf's image of the workspace, with `old` replaced by `new` in inventory's service file."""
    source = workspace / SERVICE_FILE
    original = source.read_text()
    if old:
        assert old in original
        source.write_text(original.replace(old, new))
    try:
        out = workspace / f"{name}.binpb"
        registry_cli.buf_build(workspace, "proto", out)
        return out
    finally:
        source.write_text(original)


def publish(channel: grpc.Channel, image_path: Path) -> int:
    reply = contracts_service_pb2_grpc.ContractsServiceStub(channel).PublishContract(
        contracts_service_pb2.PublishContractRequest(
            label=image_path.stem, descriptor_set=image_path.read_bytes()
        ),
        timeout=60,
    )
    return int(reply.contract.version)


def listed(channel: grpc.Channel, address: str) -> registry_pb2.ServiceInstance | None:
    reply = discovery_service_pb2_grpc.DiscoveryServiceStub(channel).ListInstances(
        discovery_service_pb2.ListInstancesRequest(), timeout=5
    )
    return next(
        (i for i in reply.instances if (i.service_name, i.address) == (SERVICE, address)), None
    )


def judged(channel: grpc.Channel, address: str) -> registry_pb2.ServiceInstance:
    """The instance once the registry has its verdict and has probed it SERVING."""
    instance = until(
        lambda: listed(channel, address),
        lambda i: (
            i is not None
            and i.contract_status != registry_pb2.CONTRACT_STATUS_PENDING
            and i.health == registry_pb2.HEALTH_STATUS_SERVING
        ),
        VERDICT_TIMEOUT_S,
        f"verdict on {address}",
    )
    assert instance is not None
    return instance


def create_product(gateway: Gateway, token: str) -> str:
    product = {
        "sku": "MUG-C",
        "name": "Mug",
        "unitPriceMinor": 1250,
        "currencyCode": "EUR",
        "initialStock": 10,
    }
    reply = call(gateway, "POST", "/v1/products", token=token, body=product)
    assert reply.status == 200, reply.body
    return str(reply.json()["product"]["productId"])


def read_product(gateway: Gateway, token: str, product_id: str) -> Reply:
    reply = call(gateway, "GET", f"/v1/products/{product_id}", token=token)
    assert reply.status == 200, reply.body
    assert reply.json()["product"]["productId"] == product_id
    return reply


def services_output(registry_address: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tools.devstack", "services", "--registry", registry_address],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        check=True,
    )
    return done.stdout


def start_with_image(services: ServiceRunner, image_path: Path, live: bool) -> RunningService:
    return services.start_instance(
        "inventory", free_port(), env={IMAGE_PATH_ENV: str(image_path)}, live=live
    )


def test_instance_with_a_breaking_contract_is_listed_with_why_and_gets_no_request(
    services: ServiceRunner, gateway: Gateway, workspace: Path, registry_channel: grpc.Channel
) -> None:
    assert publish(registry_channel, image(workspace, "v1")) == 1
    good = services.start("inventory")
    rogue = start_with_image(
        services, image(workspace, "rogue", GET_PRODUCT_RESPONSE, RENUMBERED), live=False
    )

    excluded = judged(registry_channel, rogue.address)
    assert excluded.contract_status == registry_pb2.CONTRACT_STATUS_INCOMPATIBLE
    assert not excluded.routable and excluded.contract_version == 0
    assert "breaks published v1" in excluded.exclusion_reason
    assert any("GetProductResponse" in f for f in excluded.exclusion_findings), excluded
    served = judged(registry_channel, good.address)
    assert served.routable and served.contract_version == 1
    assert served.contract_status == registry_pb2.CONTRACT_STATUS_PUBLISHED

    cli = services_output(services.registry_address)
    assert f"{good.address}" in cli and " v1 " in cli
    assert f"{rogue.address} {SERVICE}: contract breaks published v1" in cli

    assert gateway.endpoints(CLUSTER) == {good.address}
    token = admin_token()
    product_id = create_product(gateway, token)
    before = gateway.endpoint_requests(CLUSTER)
    for _ in range(READS):
        read_product(gateway, token, product_id)
    after = gateway.endpoint_requests(CLUSTER)
    assert after[good.address] - before.get(good.address, 0) == READS
    assert rogue.address not in after

    deadline = time.monotonic() + 3.0  # a few probe rounds: never resolved
    while time.monotonic() < deadline:
        assert live_addresses(services.registry_address, SERVICE) == {good.address}
        time.sleep(0.2)


def test_instance_with_an_unpublished_compatible_addition_stays_routable_until_it_is_published(
    services: ServiceRunner, gateway: Gateway, workspace: Path, registry_channel: grpc.Channel
) -> None:
    assert publish(registry_channel, image(workspace, "v1")) == 1
    good = services.start("inventory")
    ahead_image = image(workspace, "ahead", GET_PRODUCT_RESPONSE, ADDED)
    ahead = start_with_image(services, ahead_image, live=True)

    listed_ahead = judged(registry_channel, ahead.address)
    assert listed_ahead.contract_status == registry_pb2.CONTRACT_STATUS_COMPATIBLE
    assert listed_ahead.routable and listed_ahead.contract_version == 0
    assert listed_ahead.exclusion_reason == "" and not listed_ahead.exclusion_findings
    assert f"unpublished {listed_ahead.contract_fingerprint[:19]}" in services_output(
        services.registry_address
    )

    assert live_addresses(services.registry_address, SERVICE) == {good.address, ahead.address}
    assert gateway.endpoints(CLUSTER) == {good.address, ahead.address}
    token = admin_token()
    product_id = create_product(gateway, token)
    before = gateway.endpoint_requests(CLUSTER)
    for _ in range(READS):
        read_product(gateway, token, product_id)
    after = gateway.endpoint_requests(CLUSTER)
    assert after.get(ahead.address, 0) > before.get(ahead.address, 0)

    # Published, the addition is v2: that instance serves v2, and the one built from v1,
    # which lacks the new field, is now the stale build and leaves the gateway.
    assert publish(registry_channel, ahead_image) == 2
    served = until(
        lambda: listed(registry_channel, ahead.address),
        lambda i: i is not None and i.contract_version == 2,
        VERDICT_TIMEOUT_S,
        "the instance ahead serves the new version",
    )
    assert served is not None and served.routable
    assert served.contract_status == registry_pb2.CONTRACT_STATUS_PUBLISHED
    stale = until(
        lambda: listed(registry_channel, good.address),
        lambda i: i is not None and i.contract_status == registry_pb2.CONTRACT_STATUS_INCOMPATIBLE,
        VERDICT_TIMEOUT_S,
        "the instance built from v1 judged against v2",
    )
    assert stale is not None and not stale.routable
    assert "breaks published v2" in stale.exclusion_reason
    until(
        lambda: gateway.endpoints(CLUSTER),
        lambda hosts: hosts == {ahead.address},
        VERDICT_TIMEOUT_S,
        "the stale instance leaves Envoy",
    )
