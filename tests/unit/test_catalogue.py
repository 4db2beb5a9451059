"""The catalogue (runtime/catalogue.py) is the one list of processes: the files generated from
it are current, and what reads it at run time agrees with it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from registry import public_reflection
from registry.xds_resources import CLUSTERS
from runtime import catalogue
from runtime.streams import stream_configs
from tests.support.repo import REPO_ROOT, built
from tools.catalogue.generated import GENERATED, stale
from tools.runner.gateway import render_config
from tools.runner.topology import Topology


def test_generated_files_match_the_catalogue() -> None:
    assert stale(REPO_ROOT) == [], "run `python -m tools.catalogue` and commit what it writes"


def test_a_catalogue_edit_without_regenerating_makes_the_files_stale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inventory = catalogue.process("inventory")
    reviews = dataclasses.replace(
        inventory,
        name="reviews",
        package="services.reviews",
        default_port=50055,
        services=(
            catalogue.GrpcService(
                "shop.reviews.v1.ReviewsService", "shop.reviews.v1.reviews_service_pb2", True
            ),
        ),
        streams=(),
        rest_prefix="/v1/reviews",
    )
    monkeypatch.setattr(catalogue, "CATALOGUE", (*catalogue.CATALOGUE, reviews))
    monkeypatch.setattr(catalogue, "BY_NAME", {**catalogue.BY_NAME, "reviews": reviews})

    assert sorted(stale(REPO_ROOT)) == sorted(GENERATED)


def test_the_registry_serves_a_cluster_for_each_process_the_gateway_routes_to() -> None:
    assert CLUSTERS == {
        "orders": "shop.orders.v1.OrdersService",
        "inventory": "shop.inventory.v1.InventoryService",
        "payments": "shop.payments.v1.PaymentsService",
    }


def rendered_routes(tmp_path: Path) -> list[dict[str, Any]]:
    """The routes of the rendered bootstrap, which are written one JSON object a line
    (tools/runner/routes.py, ui_routes.py); token rules are too, but have no name."""
    descriptors = built("gateway/transcoder.binpb")
    config = render_config(Topology.on_free_ports(tmp_path), REPO_ROOT, descriptors)
    lines = (line.strip() for line in config.splitlines())
    items = [json.loads(line[2:]) for line in lines if line[:3] == "- {"]
    return [item for item in items if "name" in item]


def test_the_gateway_routes_every_public_service_and_no_internal_one(tmp_path: Path) -> None:
    routes = [r for r in rendered_routes(tmp_path) if "route" in r]
    prefixed = [r for r in routes if "prefix" in r["match"]]
    grpc_prefixes = {r["match"]["prefix"] for r in prefixed if "grpc" in r["match"]}
    rest_prefixes = {r["match"]["prefix"] for r in prefixed if "grpc" not in r["match"]}

    assert grpc_prefixes == {f"/{name}/" for name in catalogue.grpc_routed_services()}
    assert "/shop.orders.v1.OrdersAdminService/" not in grpc_prefixes
    assert rest_prefixes == {"/v1/orders", "/v1/products", "/v1/payments"}
    assert {r["route"]["cluster"] for r in routes} == {*CLUSTERS, "public_reflection"}


def test_the_gateway_serves_the_browser_pages_from_files(tmp_path: Path) -> None:
    pages = {r["match"]["path"]: r for r in rendered_routes(tmp_path) if "direct_response" in r}

    for path in ("/docs", "/docs/swagger-ui-bundle.js", "/console", "/console/console.js"):
        assert Path(pages[path]["direct_response"]["body"]["filename"]).is_file(), path
    assert pages["/openapi.json"]["direct_response"]["body"]["filename"].endswith("openapi.json")


def test_every_stream_of_the_catalogue_is_created() -> None:
    names = {c.name for c in stream_configs()}

    assert {
        "SHOP_ORDERS_EVENTS",
        "SHOP_INVENTORY_EVENTS",
        "SHOP_INVENTORY_COMMANDS",
        "SHOP_PAYMENTS_EVENTS",
        "SHOP_PAYMENTS_COMMANDS",
        "SHOP_DEAD_LETTERS",
    } == names


def test_every_stream_takes_the_configured_replicas() -> None:
    assert {c.num_replicas for c in stream_configs()} == {1}
    assert {c.num_replicas for c in stream_configs(3)} == {3}
    with pytest.raises(ValueError, match="at least 1"):
        stream_configs(0)


def test_default_ports_are_the_catalogues() -> None:
    topology = Topology.from_env(Path("/nonexistent"))

    assert {p.name: topology.port(p.name) for p in catalogue.CATALOGUE} == {
        "orders": 50051,
        "inventory": 50052,
        "payments": 50053,
        "paygate": 50054,
    }
    assert topology.registry_port == 50050


def test_payments_starts_after_the_provider_it_depends_on() -> None:
    order = [p.name for p in catalogue.start_order()]

    assert order.index("paygate") < order.index("payments")


def test_public_reflection_knows_public_services_only() -> None:
    services = [s for p in catalogue.CATALOGUE for s in p.services]
    pool = public_reflection.public_pool(services)

    orders_file = pool.FindFileContainingSymbol("shop.orders.v1.OrdersService")
    assert list(orders_file.services_by_name) == ["OrdersService"]
    for internal in ("shop.orders.v1.OrdersAdminService", "paygate.v1.PaymentGatewayService"):
        with pytest.raises(KeyError):
            pool.FindFileContainingSymbol(internal)
