"""Driving the PayGate stand-in from tests: change its behaviour, read its ledger."""

from __future__ import annotations

import grpc
from paygate.v1 import paygate_pb2 as pb
from paygate.v1 import paygate_pb2_grpc

from tests.support.grpc_client import CALL_TIMEOUT_S as T


class PayGateControl:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._faults = paygate_pb2_grpc.FaultInjectionServiceStub(channel)
        self._gateway = paygate_pb2_grpc.PaymentGatewayServiceStub(channel)

    async def behave(
        self, behaviour: pb.Behaviour, delay_ms: int = 0, failure_percent: int = 0
    ) -> None:
        await self._faults.SetBehaviour(
            pb.SetBehaviourRequest(
                behaviour=behaviour, delay_ms=delay_ms, failure_percent=failure_percent
            ),
            timeout=T,
        )

    async def outcome(self, order_id: str) -> int | None:
        """The provider's outcome for an order, None if it never recorded one."""
        try:
            reply = await self._gateway.GetAuthorization(
                pb.GetAuthorizationRequest(idempotency_key=order_id), timeout=T
            )
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return int(reply.authorization.outcome)
