"""PaymentsService over gRPC: proto request -> one application call -> proto response."""

from __future__ import annotations

import grpc
from shop.payments.v1 import payments_pb2, payments_service_pb2, payments_service_pb2_grpc

from runtime.caller import caller_of
from runtime.ids import timestamp
from services.payments.application import Payments
from services.payments.domain import Account, Payment

SERVICE_NAME = payments_service_pb2.DESCRIPTOR.services_by_name["PaymentsService"].full_name


def account_pb(a: Account) -> payments_pb2.CreditAccount:
    return payments_pb2.CreditAccount(
        customer_id=a.customer_id,
        credit_limit_minor=a.credit_limit_minor,
        available_minor=a.available_minor,
        currency_code=a.currency_code,
        create_time=timestamp(a.create_time),
        update_time=timestamp(a.update_time),
    )


def payment_pb(p: Payment) -> payments_pb2.Payment:
    return payments_pb2.Payment(
        order_id=p.order_id,
        customer_id=p.customer_id,
        amount_minor=p.amount_minor,
        currency_code=p.currency_code,
        status=f"PAYMENT_STATUS_{p.status.value}",
        decline_reason=f"DECLINE_REASON_{p.decline_reason.value}" if p.decline_reason else None,
        decline_message=p.decline_message,
        create_time=timestamp(p.create_time),
        update_time=timestamp(p.update_time),
    )


class PaymentsApi(payments_service_pb2_grpc.PaymentsServiceServicer):
    def __init__(self, payments: Payments) -> None:
        self._payments = payments

    async def OpenAccount(
        self, request: payments_service_pb2.OpenAccountRequest, context: grpc.aio.ServicerContext
    ) -> payments_service_pb2.OpenAccountResponse:
        account = await self._payments.open_account(
            caller_of(context),
            request.customer_id,
            request.credit_limit_minor,
            request.currency_code,
        )
        return payments_service_pb2.OpenAccountResponse(account=account_pb(account))

    async def GetAccount(
        self, request: payments_service_pb2.GetAccountRequest, context: grpc.aio.ServicerContext
    ) -> payments_service_pb2.GetAccountResponse:
        account = await self._payments.get_account(caller_of(context), request.customer_id)
        return payments_service_pb2.GetAccountResponse(account=account_pb(account))

    async def GetPayment(
        self, request: payments_service_pb2.GetPaymentRequest, context: grpc.aio.ServicerContext
    ) -> payments_service_pb2.GetPaymentResponse:
        payment = await self._payments.get_payment(caller_of(context), request.order_id)
        return payments_service_pb2.GetPaymentResponse(payment=payment_pb(payment))
