"""The dev CLI behind the Makefile: `python -m tools.devstack up|down|status|token|logs`,
`services` / `contracts ...` against the registry (registry_cli.py), `sagas ...` /
`dead-letters ...` for operators (operators_cli.py), and `trace <order_id>` from the span files
(traces.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runtime.transport_security import blocking_channel
from tools.devstack import logs, operators_cli, registry_cli, traces
from tools.devstack.smoke import smoke
from tools.runner.gateway_limits import GatewayLimitsError
from tools.runner.process import ProcessFailedError
from tools.runner.stack import SERVICES, Stack
from tools.runner.tokens import DEFAULT_TTL_S, KNOWN_ROLES, MAX_TTL_S, mint_dev_token
from tools.runner.topology import Topology

REPO_ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="concord", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up_command = commands.add_parser(
        "up", help="start every process in the background, wait until healthy"
    )
    up_command.add_argument(
        "--cluster",
        action="store_true",
        help="the scaled topology: PostgreSQL, three NATS nodes, two instances of each service",
    )
    commands.add_parser("down", help="stop everything `up` started (either topology)")
    commands.add_parser("status", help="show what runs where")
    commands.add_parser(
        "diagnostics", help="each service's circuit breakers, consumers and outbox backlog"
    )
    commands.add_parser(
        "rebuild-read-models",
        help="drop the orders read models and rebuild them by replaying events",
    )
    registry_cli.add_commands(commands)
    operators_cli.add_commands(commands)
    logs.add_command(commands)
    traces.add_commands(commands)
    token = commands.add_parser("token", help="print a development JWT for the gateway")
    token.add_argument("--customer", required=True, help="the customer id: the token's subject")
    token.add_argument(
        "--ttl-s",
        type=int,
        default=DEFAULT_TTL_S,
        help=f"lifetime in seconds, at most {MAX_TTL_S} (the gateway refuses longer ones)",
    )
    token.add_argument(
        "--role",
        action="append",
        default=[],
        choices=KNOWN_ROLES,
        help="a role for the token's `roles` claim (repeatable), e.g. admin",
    )
    args = parser.parse_args(argv)
    if args.command == "up":
        return up(args.cluster)
    if args.command == "down":
        for stack in stacks():
            stack.down()
        return 0
    if args.command in ("services", "contracts"):
        return registry_cli.run(args, running_topology(), REPO_ROOT)
    if args.command in ("sagas", "dead-letters"):
        return operators_cli.run(args, running_topology())

    if args.command == "trace":
        return traces.run(args, running_topology().data_dir)

    if args.command == "token":
        if not 0 < args.ttl_s <= MAX_TTL_S:
            parser.error(f"--ttl-s must be between 1 and {MAX_TTL_S}")
        print(mint_dev_token(REPO_ROOT, args.customer, args.ttl_s, roles=args.role))
        return 0

    if args.command == "logs":
        return logs.show(args, running_topology().log_dir)

    stack = Stack(running_topology(), repo_root=REPO_ROOT)
    if args.command == "diagnostics":
        return diagnostics(stack)
    if args.command == "rebuild-read-models":
        return rebuild_read_models(stack.topology.address("orders"))
    print(stack.describe())
    return 0


def stacks() -> tuple[Stack, Stack]:
    """The embedded default and the scaled topology: the same ports for the gateway, the
    registry and each service's first instance, so at most one of them runs."""
    default = Topology.from_env(REPO_ROOT / ".data")
    return (
        Stack(default, repo_root=REPO_ROOT),
        Stack(default.scaled(), repo_root=REPO_ROOT),
    )


def running_topology() -> Topology:
    """The scaled topology while any of its processes runs, else the embedded default: what
    `status`, `logs`, `services` and the other commands look at."""
    default, scaled = stacks()
    return scaled.topology if scaled.running() else default.topology


def up(cluster: bool) -> int:
    default, scaled = stacks()
    stack, other = (scaled, default) if cluster else (default, scaled)
    if other.running():
        command = "make up" if cluster else "make up-cluster"
        print(
            f"{command} is running: the two topologies share the gateway's and the services'"
            " ports. Stop it with `make down` first.",
            file=sys.stderr,
        )
        return 1
    try:
        stack.up()
    except (ProcessFailedError, RuntimeError, OSError, GatewayLimitsError) as error:
        return start_failed(error)
    print(stack.describe())
    return 0 if smoke(stack, REPO_ROOT) else 1


def start_failed(error: Exception) -> int:
    """What a failed `make up` prints instead of a traceback: which process, its log and the
    log's last lines (in the error's message), and what to do next."""
    print(f"\nmake up failed: {error}", file=sys.stderr)
    print(
        "\nWhat was started keeps running: fix the cause and run `make up` again, or"
        " `make down`. All logs: `python -m tools.devstack logs`.",
        file=sys.stderr,
    )
    return 1


def diagnostics(stack: Stack) -> int:
    import grpc
    from concord.ops.v1 import ops_service_pb2, ops_service_pb2_grpc

    for name in SERVICES:
        address = stack.topology.address(name)
        try:
            with blocking_channel(address) as channel:
                reply = ops_service_pb2_grpc.OperationsServiceStub(channel).GetDiagnostics(
                    ops_service_pb2.GetDiagnosticsRequest(), timeout=5
                )
        except grpc.RpcError as error:
            print(f"{name} ({address}): unreachable: {error.code().name}")  # type: ignore[attr-defined]
            continue
        print(f"{name} ({address}): outbox pending {reply.outbox_pending}")
        for b in reply.breakers:
            retry = (
                f", next trial {b.retry_time.ToDatetime():%H:%M:%S}Z"
                if b.HasField("retry_time")
                else ""
            )
            print(f"  breaker {b.callee}: {b.state}, {b.failures} failures{retry}")
        for c in reply.consumers:
            print(
                f"  consumer {c.durable}: {c.processed} processed, {c.duplicates} duplicates,"
                f" {c.dead_lettered} dead-lettered"
            )
    return 0


def rebuild_read_models(address: str) -> int:
    from shop.orders.v1 import orders_service_pb2, orders_service_pb2_grpc

    with blocking_channel(address) as channel:
        reply = orders_service_pb2_grpc.OrdersAdminServiceStub(channel).RebuildReadModels(
            orders_service_pb2.RebuildReadModelsRequest(), timeout=120
        )
    print(f"rebuilt {reply.orders_rebuilt} orders from {reply.events_replayed} events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
