"""Dev CLI commands for operators: sagas that did not finish on their own, and dead letters.

    python -m tools.devstack sagas [--step STEP] [--stuck-s N]   open sagas (or those in STEP)
    python -m tools.devstack sagas get ORDER_ID                   one saga, step by step
    python -m tools.devstack sagas retry ORDER_ID                 re-send pending compensations
    python -m tools.devstack sagas resolve ORDER_ID --reason R    close a pending saga
    python -m tools.devstack sagas cancellations [--older-s N]    overdue cancellations
    python -m tools.devstack dead-letters list [SERVICE]          decoded dead letters
    python -m tools.devstack dead-letters replay SERVICE SEQUENCE replay one, cause fixed

Each talks to a process's internal gRPC port directly (OrdersAdminService on orders,
OperationsService on every service); see docs/observability.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import grpc

from runtime.transport_security import blocking_channel
from tools.runner.stack import SERVICES
from tools.runner.topology import Topology

CALL_TIMEOUT_S = 10.0
SAGA_STEPS = ("RESERVING", "AUTHORIZING", "COMPENSATING", "COMPENSATION_PENDING", "DONE")


def add_commands(commands: Any) -> None:
    sagas = commands.add_parser("sagas", help="place-order sagas: list, get, retry, resolve")
    sagas.add_argument("--step", choices=SAGA_STEPS, help="only sagas in this step")
    sagas.add_argument(
        "--stuck-s", type=int, default=0, help="only sagas in their step for longer than this"
    )
    actions = sagas.add_subparsers(dest="action")
    get = actions.add_parser("get", help="one saga: steps with times, pending commands")
    get.add_argument("order_id")
    retry = actions.add_parser("retry", help="re-send a COMPENSATION_PENDING saga's commands")
    retry.add_argument("order_id")
    resolve = actions.add_parser("resolve", help="close a COMPENSATION_PENDING saga")
    resolve.add_argument("order_id")
    resolve.add_argument("--reason", required=True, help="why, recorded on the order")
    overdue = actions.add_parser("cancellations", help="orders CANCELLING for too long")
    overdue.add_argument(
        "--older-s", type=int, default=0, help="default: the service's alert setting"
    )

    letters = commands.add_parser("dead-letters", help="messages consumers gave up on")
    letter_actions = letters.add_subparsers(dest="action", required=True)
    listing = letter_actions.add_parser("list", help="dead letters, payloads decoded")
    listing.add_argument("service", nargs="?", choices=SERVICES, help="default: every service")
    replay = letter_actions.add_parser("replay", help="publish one again, once its cause is fixed")
    replay.add_argument("service", choices=SERVICES)
    replay.add_argument("sequence", type=int)


def run(args: argparse.Namespace, topology: Topology) -> int:
    try:
        if args.command == "sagas":
            return _sagas(args, topology.address("orders"))
        return _dead_letters(args, topology)
    except grpc.RpcError as error:
        print(f"{error.code().name}: {error.details()}")  # type: ignore[attr-defined]
        return 1


def _call(address: str, stub_class: Any, method: str, request: Any) -> Any:
    with blocking_channel(address) as channel:
        call: Callable[..., Any] = getattr(stub_class(channel), method)
        return call(request, timeout=CALL_TIMEOUT_S)


def _time(ts: Any) -> str:
    return f"{ts.ToDatetime():%Y-%m-%d %H:%M:%S}Z" if ts.ByteSize() else "-"


def _print_saga(saga: Any, steps: bool) -> None:
    from shop.orders.v1 import orders_pb2

    step = orders_pb2.SagaStep.Name(saga.step).removeprefix("SAGA_STEP_")
    deadline = f", deadline {_time(saga.deadline)}" if saga.HasField("deadline") else ""
    print(
        f"{saga.order_id}  {step} since {_time(saga.step_time)}{deadline}, attempt {saga.attempt}"
    )
    if saga.reason:
        print(f"  reason: {saga.reason}")
    if steps:
        for entered in saga.steps:
            name = orders_pb2.SagaStep.Name(entered.step).removeprefix("SAGA_STEP_")
            print(f"  {_time(entered.enter_time)}  {name}")
    if steps:
        for command in saga.commands_sent:
            print(f"  sent {command.type_name} {command.command_id}")
    for command in saga.pending_commands:
        print(f"  waiting on {command.type_name} {command.command_id}")
    if saga.resolution:
        print(f"  resolved: {saga.resolution}")


def _sagas(args: argparse.Namespace, address: str) -> int:
    from shop.orders.v1 import orders_service_pb2 as pb
    from shop.orders.v1.orders_service_pb2_grpc import OrdersAdminServiceStub as Stub

    if args.action == "get":
        reply = _call(address, Stub, "GetSaga", pb.GetSagaRequest(order_id=args.order_id))
        _print_saga(reply.saga, steps=True)
    elif args.action == "retry":
        request = pb.RetryCompensationRequest(order_id=args.order_id)
        _print_saga(_call(address, Stub, "RetryCompensation", request).saga, steps=False)
    elif args.action == "resolve":
        request = pb.ResolveSagaRequest(order_id=args.order_id, reason=args.reason)
        _print_saga(_call(address, Stub, "ResolveSaga", request).saga, steps=False)
    elif args.action == "cancellations":
        request = pb.ListOverdueCancellationsRequest(cancelling_for_s=args.older_s)
        for c in _call(address, Stub, "ListOverdueCancellations", request).cancellations:
            print(
                f"{c.order_id}  CANCELLING since {_time(c.since_time)}, stock released"
                f" {c.stock_released}, payment refunded {c.payment_refunded}"
            )
    else:
        token = ""
        while True:
            request = pb.ListSagasRequest(
                step=f"SAGA_STEP_{args.step or 'UNSPECIFIED'}",
                stuck_for_s=args.stuck_s,
                page_size=100,
                page_token=token,
            )
            reply = _call(address, Stub, "ListSagas", request)
            for saga in reply.sagas:
                _print_saga(saga, steps=False)
            token = reply.next_page_token
            if not token:
                break
    return 0


def _dead_letters(args: argparse.Namespace, topology: Topology) -> int:
    from concord.ops.v1 import ops_service_pb2 as pb
    from concord.ops.v1.ops_service_pb2_grpc import OperationsServiceStub as Stub

    if args.action == "replay":
        request = pb.ReplayDeadLetterRequest(sequence=args.sequence)
        reply = _call(topology.address(args.service), Stub, "ReplayDeadLetter", request)
        letter = reply.dead_letter
        print(f"replayed {letter.sequence} to {letter.subject} as {reply.replay_message_id}")
        return 0
    for service in [args.service] if args.service else SERVICES:
        token = ""
        while True:
            request = pb.ListDeadLettersRequest(page_size=100, page_token=token)
            reply = _call(topology.address(service), Stub, "ListDeadLetters", request)
            for x in reply.dead_letters:
                print(
                    f"{service} #{x.sequence}  {x.subject}  {x.type_name}  id {x.message_id or '-'}"
                    f"  first failure {_time(x.first_failure_time)},"
                    f" dead-lettered {_time(x.dead_letter_time)}"
                )
                print(f"  reason: {x.reason}  consumer: {x.consumer}")
                print(f"  payload: {x.payload_json or '(undecodable: ' + x.decode_error + ')'}")
            token = reply.next_page_token
            if not token:
                break
    return 0
