"""The catalogue: every process of the shop, named once (docs/architecture.md, "The catalogue").

eShop's AppHost and Online Boutique's skaffold.yaml each name every service in one place; this
is Concord's. Everything that needs the list reads it from here: the JetStream streams
(runtime/streams.py), the default ports (runtime/settings.py), the clusters the registry serves
Envoy (registry/xds_resources.py), the gateway's routes and public services
(tools/runner/gateway.py), the processes `make up` and the tests start (tools/runner/stack.py,
tools/runner/topology.py, tests/support/processes.py). What cannot import Python is generated
from it by `python -m tools.catalogue` (gateway/public_services.txt, the route table in
gateway/README.md, tools/bazel/catalogue.bzl), and tests/unit/test_catalogue.py fails when one
of those files is stale.

Why Python and not a data file: it lives in `runtime/`, the lowest layer, so the services, the
registry and the tools may all import it; mypy checks every use of a field; frozen dataclasses
and enums keep illegal entries (a command stream on a stand-in, a public service without a REST
prefix) out by construction (`_check`, run at import); and there is no file to locate in Bazel
runfiles or a parser to keep. The registry (platform, port 50050, metrics 9450) is not here: it is not part
of the shop, and every process needs its address before it can find anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class StreamKind(StrEnum):
    EVENTS = "events"
    """Facts a context publishes; kept by limits, read by any number of consumers."""
    COMMANDS = "commands"
    """Work a context is asked to do; a work queue, each message taken once."""


@dataclass(frozen=True)
class Stream:
    """A JetStream stream a context owns: `SHOP_<CONTEXT>_<KIND>` on `shop.<context>.<kind>.>`."""

    context: str
    kind: StreamKind

    @property
    def name(self) -> str:
        return f"SHOP_{self.context.upper()}_{self.kind.value.upper()}"

    @property
    def subjects(self) -> tuple[str, ...]:
        return (f"shop.{self.context}.{self.kind.value}.>",)


@dataclass(frozen=True)
class GrpcService:
    """A gRPC service a process serves. Public ones are routed, transcoded and reflected by the
    gateway; internal ones are reached only directly (operators, other services)."""

    full_name: str
    """`shop.orders.v1.OrdersService`: what the registry resolves and Envoy routes on."""
    proto_module: str
    """The generated module whose file declares it, for whoever needs its descriptor."""
    public: bool
    rest_only: bool = False
    """Public only for its RPCs with a `google.api.http` rule, as REST, and only to admin tokens
    (the servicer checks the role): no gRPC route, not reflected, so its other RPCs (repairs,
    rebuilds) stay on the service's own port. docs/gateway.md, "Operator views"."""


@dataclass(frozen=True)
class Consumes:
    """What a process takes from the others: the contracts whose change can break it. The
    registry's compatibility check names the process when a candidate breaks one of these
    (docs/contracts.md, "Consumers on record"); tests/unit/test_catalogue_consumers.py keeps it
    equal to what the code subscribes to and calls."""

    calls: tuple[str, ...] = ()
    """RPCs it calls on another process, `package.Service.Method`."""
    messages: tuple[str, ...] = ()
    """Event and command types it consumes from JetStream, by full protobuf name."""


@dataclass(frozen=True)
class Process:
    name: str
    """The process name: its pid file, log file, data folder, Envoy cluster and port setting."""
    package: str
    """The Python package it runs as (`python -m <package>`, or bazel-bin/<package>/<name>)."""
    default_port: int
    metrics_port: int
    """Where it serves Prometheus metrics (runtime/metrics.py); setting `metrics_port_env`."""
    note: str
    """One line for `make status` and the README's table."""
    services: tuple[GrpcService, ...] = ()
    streams: tuple[Stream, ...] = ()
    rest_prefix: str | None = None
    """Where the gateway routes its REST calls (`/v1/orders`); None: no REST surface."""
    depends_on: tuple[str, ...] = ()
    """Processes of the catalogue it cannot work without, started before it."""
    standin: bool = False
    """A stand-in for an outside system: it does not register, as a third party would not."""
    consumes: Consumes = Consumes()
    """The RPCs, events and commands of other processes it depends on."""

    @property
    def port_env(self) -> str:
        return f"CONCORD_{self.name.upper()}_PORT"

    @property
    def metrics_port_env(self) -> str:
        return f"CONCORD_{self.name.upper()}_METRICS_PORT"

    @property
    def bazel_library(self) -> str:
        return f"//{self.package.replace('.', '/')}:{self.name}_lib"

    @property
    def public_services(self) -> tuple[str, ...]:
        return tuple(s.full_name for s in self.services if s.public)

    @property
    def grpc_routed_services(self) -> tuple[str, ...]:
        """The public services the gateway routes by gRPC service name and reflects."""
        return tuple(s.full_name for s in self.services if s.public and not s.rest_only)

    @property
    def registered_service(self) -> str | None:
        """The service the registry resolves for this process (its first one); None for
        stand-ins, which do not register."""
        return None if self.standin or not self.services else self.services[0].full_name


def _service(
    full_name: str, proto_module: str, *, public: bool, rest_only: bool = False
) -> GrpcService:
    return GrpcService(full_name, proto_module, public, rest_only)


CATALOGUE: tuple[Process, ...] = (
    Process(
        name="orders",
        package="services.orders",
        default_port=50051,
        metrics_port=9451,
        note="event-sourced orders, the place-order saga orchestrator",
        services=(
            _service(
                "shop.orders.v1.OrdersService", "shop.orders.v1.orders_service_pb2", public=True
            ),
            _service(
                "shop.orders.v1.OrdersAdminService",
                "shop.orders.v1.orders_service_pb2",
                public=True,
                rest_only=True,
            ),
        ),
        streams=(Stream("orders", StreamKind.EVENTS),),
        rest_prefix="/v1/orders",
        consumes=Consumes(
            calls=("shop.inventory.v1.InventoryService.BatchGetProducts",),
            messages=(
                "shop.inventory.v1.StockReserved",
                "shop.inventory.v1.StockUnavailable",
                "shop.inventory.v1.StockReleased",
                "shop.payments.v1.PaymentAuthorized",
                "shop.payments.v1.PaymentDeclined",
                "shop.payments.v1.PaymentVoided",
                "shop.payments.v1.PaymentRefunded",
            ),
        ),
    ),
    Process(
        name="inventory",
        package="services.inventory",
        default_port=50052,
        metrics_port=9452,
        note="products, stock, reservations",
        services=(
            _service(
                "shop.inventory.v1.InventoryService",
                "shop.inventory.v1.inventory_service_pb2",
                public=True,
            ),
        ),
        streams=(Stream("inventory", StreamKind.EVENTS), Stream("inventory", StreamKind.COMMANDS)),
        rest_prefix="/v1/products",
        consumes=Consumes(
            messages=(
                "shop.inventory.v1.ReserveStock",
                "shop.inventory.v1.ReleaseStock",
                "shop.inventory.v1.CommitReservation",
                "shop.orders.v1.OrderCancellationRequested",
            ),
        ),
    ),
    Process(
        name="payments",
        package="services.payments",
        default_port=50053,
        metrics_port=9453,
        note="customer credit, authorisations, refunds",
        services=(
            _service(
                "shop.payments.v1.PaymentsService",
                "shop.payments.v1.payments_service_pb2",
                public=True,
            ),
        ),
        streams=(Stream("payments", StreamKind.EVENTS), Stream("payments", StreamKind.COMMANDS)),
        rest_prefix="/v1/payments",
        depends_on=("paygate",),
        consumes=Consumes(
            calls=(
                "paygate.v1.PaymentGatewayService.Authorize",
                "paygate.v1.PaymentGatewayService.GetAuthorization",
                "paygate.v1.PaymentGatewayService.Void",
            ),
            messages=(
                "shop.payments.v1.AuthorizePayment",
                "shop.payments.v1.VoidPayment",
                "shop.payments.v1.CapturePayment",
                "shop.orders.v1.OrderCancellationRequested",
            ),
        ),
    ),
    Process(
        name="paygate",
        package="standins.paygate",
        default_port=50054,
        metrics_port=9454,
        note="stand-in payment provider (fault injection for tests)",
        services=(
            _service("paygate.v1.PaymentGatewayService", "paygate.v1.paygate_pb2", public=False),
            _service("paygate.v1.FaultInjectionService", "paygate.v1.paygate_pb2", public=False),
        ),
        standin=True,
    ),
)

BY_NAME: dict[str, Process] = {p.name: p for p in CATALOGUE}


def process(name: str) -> Process:
    """The catalogue entry called `name`; KeyError names the known ones."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name!r} is not in the catalogue: {sorted(BY_NAME)}") from None


def shop_services() -> tuple[Process, ...]:
    """The shop's own services, without the stand-ins."""
    return tuple(p for p in CATALOGUE if not p.standin)


def gateway_processes() -> tuple[Process, ...]:
    """The processes the gateway routes to: one Envoy cluster each, named after the process."""
    return tuple(p for p in CATALOGUE if p.public_services)


def public_services() -> tuple[str, ...]:
    """What the gateway transcodes and the OpenAPI document describes."""
    return tuple(name for p in CATALOGUE for name in p.public_services)


def grpc_routed_services() -> tuple[str, ...]:
    """The public services the gateway also routes by gRPC name and reflects: all but the
    REST-only ones."""
    return tuple(name for p in CATALOGUE for name in p.grpc_routed_services)


def streams() -> tuple[Stream, ...]:
    return tuple(s for p in CATALOGUE for s in p.streams)


def consumers() -> tuple[Process, ...]:
    """The processes that consume anything of another's (RPCs, events, commands)."""
    return tuple(p for p in CATALOGUE if p.consumes.calls or p.consumes.messages)


def start_order() -> tuple[Process, ...]:
    """Every process after what it depends on, otherwise in catalogue order."""
    ordered: list[Process] = []

    def visit(p: Process) -> None:
        if p not in ordered:
            for dependency in p.depends_on:
                visit(process(dependency))
            ordered.append(p)

    for p in CATALOGUE:
        visit(p)
    return tuple(ordered)


def _check() -> None:
    """What the types cannot say; a wrong entry fails at import, in every test."""
    problems = []
    ports = [p.default_port for p in CATALOGUE] + [p.metrics_port for p in CATALOGUE]
    if len(set(ports)) != len(ports):
        problems.append(f"a port is used twice (gRPC and metrics ports): {ports}")
    for attribute in ("name", "rest_prefix"):
        values = [getattr(p, attribute) for p in CATALOGUE if getattr(p, attribute) is not None]
        if len(set(values)) != len(values):
            problems.append(f"duplicate {attribute}: {values}")
    for p in CATALOGUE:
        if any(d not in BY_NAME or d == p.name for d in p.depends_on):
            problems.append(f"{p.name}: depends on an unknown process or itself")
        if any(s.context != p.name for s in p.streams):
            problems.append(f"{p.name}: a process owns only its own streams")
        if p.rest_prefix is not None and not p.public_services:
            problems.append(f"{p.name}: a REST prefix needs a public service")
        for call in p.consumes.calls:
            service = call.rsplit(".", 1)[0]
            if not any(service in (s.full_name for s in q.services) for q in CATALOGUE if q != p):
                problems.append(f"{p.name}: calls {call}, not a service of another process")
        if p.services and p.services[0].rest_only:
            problems.append(f"{p.name}: its first service is what registers; not a REST-only one")
        if any(s.rest_only and not s.public for s in p.services):
            problems.append(f"{p.name}: a REST-only service is a public one")
        if p.standin and (p.public_services or p.streams):
            problems.append(f"{p.name}: a stand-in is outside the shop (no public API, no streams)")
    if problems:
        raise ValueError("runtime/catalogue.py: " + "; ".join(problems))


_check()
