"""PayGate's gRPC API and its fault injection."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import grpc
from paygate.v1 import paygate_pb2 as pb
from paygate.v1 import paygate_pb2_grpc

from standins.paygate.ledger import Authorization, Ledger


@dataclass
class Behaviour:
    mode: int = pb.BEHAVIOUR_NORMAL
    delay_ms: int = 0
    failure_percent: int = 0


def authorization_pb(a: Authorization) -> pb.Authorization:
    return pb.Authorization(
        idempotency_key=a.idempotency_key,
        authorization_id=a.authorization_id,
        outcome=f"OUTCOME_{a.outcome.value}",
        amount_minor=a.amount_minor,
        currency_code=a.currency_code,
        decline_message=a.decline_message,
    )


class PaymentGateway(paygate_pb2_grpc.PaymentGatewayServiceServicer):
    def __init__(self, ledger: Ledger, behaviour: Behaviour) -> None:
        self._ledger = ledger
        self._behaviour = behaviour

    async def Authorize(
        self, request: pb.AuthorizeRequest, context: grpc.aio.ServicerContext
    ) -> pb.AuthorizeResponse:
        if not request.idempotency_key or request.amount_minor <= 0:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "idempotency_key and a positive amount are required",
            )
        b = self._behaviour
        mode = b.mode
        if mode == pb.BEHAVIOUR_FLAPPING:
            roll = random.randrange(100)
            mode = (
                pb.BEHAVIOUR_FAILING
                if roll < b.failure_percent
                else random.choice([pb.BEHAVIOUR_SLOW, pb.BEHAVIOUR_NORMAL])
            )
        if mode == pb.BEHAVIOUR_FAILING:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "paygate is failing (fault injection)")
        if mode == pb.BEHAVIOUR_SLOW:
            # Keeps going after the caller's deadline, like a real provider: the charge lands late.
            await asyncio.shield(asyncio.sleep(b.delay_ms / 1000))
        decline = "declined by issuer (fault injection)" if mode == pb.BEHAVIOUR_DECLINING else ""
        auth = self._ledger.record(
            request.idempotency_key, request.amount_minor, request.currency_code, decline
        )
        return pb.AuthorizeResponse(authorization=authorization_pb(auth))

    async def GetAuthorization(
        self, request: pb.GetAuthorizationRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetAuthorizationResponse:
        auth = self._ledger.get(request.idempotency_key)
        if auth is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"no authorisation for {request.idempotency_key!r}"
            )
        assert auth is not None
        return pb.GetAuthorizationResponse(authorization=authorization_pb(auth))

    async def Void(
        self, request: pb.VoidRequest, context: grpc.aio.ServicerContext
    ) -> pb.VoidResponse:
        if self._behaviour.mode == pb.BEHAVIOUR_FAILING:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "paygate is failing (fault injection)")
        return pb.VoidResponse(
            authorization=authorization_pb(self._ledger.void(request.idempotency_key))
        )


class FaultInjection(paygate_pb2_grpc.FaultInjectionServiceServicer):
    def __init__(self, behaviour: Behaviour) -> None:
        self._behaviour = behaviour

    async def SetBehaviour(
        self, request: pb.SetBehaviourRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetBehaviourResponse:
        self._behaviour.mode = request.behaviour or pb.BEHAVIOUR_NORMAL
        self._behaviour.delay_ms = max(0, request.delay_ms)
        self._behaviour.failure_percent = min(100, max(0, request.failure_percent))
        return pb.SetBehaviourResponse()
