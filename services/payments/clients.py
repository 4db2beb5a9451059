"""Payments' calls to another party: the external payment provider (PayGate), behind a small
interface (`PaymentProvider`) so the domain and the application never see its protocol, and
application tests can stand a fake in for it.

Every call is idempotent by key (the order id), so every call may be retried. Authorize with a
timeout is resolved, not guessed: look the key up; if the provider cannot say, void the key
(its void is a tombstone: a late authorisation never charges).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import grpc
from paygate.v1 import paygate_pb2 as pb
from paygate.v1.paygate_pb2_grpc import PaymentGatewayServiceStub

from runtime.clients import ServiceClient
from runtime.errors import DependencyUnavailableError


@dataclass(frozen=True)
class ProviderAnswer:
    approved: bool
    message: str = ""
    unavailable: bool = False
    """True when the provider could not answer: the key is voided to be sure."""
    void_pending: bool = False
    """True when even the void could not be made: it must be retried until it is."""


class PaymentProvider(Protocol):
    async def authorize(
        self, key: str, customer_id: str, amount_minor: int, currency_code: str
    ) -> ProviderAnswer: ...

    async def void(self, key: str) -> None: ...


class PayGate:
    def __init__(self, client: ServiceClient[PaymentGatewayServiceStub]) -> None:
        self._client = client

    async def authorize(
        self, key: str, customer_id: str, amount_minor: int, currency_code: str
    ) -> ProviderAnswer:
        request = pb.AuthorizeRequest(
            idempotency_key=key,
            customer_id=customer_id,
            amount_minor=amount_minor,
            currency_code=currency_code,
        )
        try:
            reply: pb.AuthorizeResponse = await self._client.call(
                lambda paygate: paygate.Authorize, request, idempotent=True
            )
            return _answer(reply.authorization)
        except DependencyUnavailableError as error:
            return await self._resolve_unknown(key, str(error))

    async def _resolve_unknown(self, key: str, why: str) -> ProviderAnswer:
        """The outcome is unknown: look it up; if the provider cannot say, void it."""
        try:
            reply: pb.GetAuthorizationResponse = await self._client.call(
                lambda paygate: paygate.GetAuthorization,
                pb.GetAuthorizationRequest(idempotency_key=key),
                idempotent=True,
            )
            return _answer(reply.authorization)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
        except DependencyUnavailableError:
            pass
        message = f"payment provider unavailable: {why}"
        try:
            await self.void(key)
        except DependencyUnavailableError:
            return ProviderAnswer(
                approved=False, message=message, unavailable=True, void_pending=True
            )
        return ProviderAnswer(approved=False, message=message, unavailable=True)

    async def void(self, key: str) -> None:
        """Raises DependencyUnavailableError when the void could not be made (retry later)."""
        await self._client.call(
            lambda paygate: paygate.Void, pb.VoidRequest(idempotency_key=key), idempotent=True
        )


def _answer(auth: pb.Authorization) -> ProviderAnswer:
    if auth.outcome == pb.OUTCOME_APPROVED:
        return ProviderAnswer(approved=True)
    if auth.outcome == pb.OUTCOME_VOIDED:
        return ProviderAnswer(approved=False, message="authorisation was voided at the provider")
    return ProviderAnswer(
        approved=False, message=auth.decline_message or "declined by the payment provider"
    )
