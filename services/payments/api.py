"""PaymentsService over gRPC: validate, run one transaction, translate to protobuf."""

from __future__ import annotations

import grpc
from shop.payments.v1 import payments_pb2, payments_service_pb2, payments_service_pb2_grpc

from runtime.caller import Role, caller_of
from runtime.database import Connection, Database
from runtime.errors import AlreadyExistsError, NotFoundError
from runtime.ids import now, timestamp
from services.payments import store
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
    def __init__(self, db: Database) -> None:
        self._db = db

    async def OpenAccount(
        self, request: payments_service_pb2.OpenAccountRequest, context: grpc.aio.ServicerContext
    ) -> payments_service_pb2.OpenAccountResponse:
        # Opening an account grants credit: only admins (and internal callers) may.
        caller_of(context).require_role(Role.ADMIN)

        def open_account(conn: Connection) -> Account:
            if store.get_account(conn, request.customer_id) is not None:
                raise AlreadyExistsError("credit account", request.customer_id)
            at = now()
            account = Account(
                customer_id=request.customer_id,
                credit_limit_minor=request.credit_limit_minor,
                available_minor=request.credit_limit_minor,
                currency_code=request.currency_code,
                create_time=at,
                update_time=at,
            )
            store.insert_account(conn, account)
            return account

        account = await self._db.write(open_account)
        return payments_service_pb2.OpenAccountResponse(account=account_pb(account))

    async def GetAccount(
        self, request: payments_service_pb2.GetAccountRequest, context: grpc.aio.ServicerContext
    ) -> payments_service_pb2.GetAccountResponse:
        if not caller_of(context).may_read_customer(request.customer_id):
            raise NotFoundError("credit account", request.customer_id)
        account = await self._db.read(lambda conn: store.get_account(conn, request.customer_id))
        if account is None:
            raise NotFoundError("credit account", request.customer_id)
        return payments_service_pb2.GetAccountResponse(account=account_pb(account))

    async def GetPayment(
        self, request: payments_service_pb2.GetPaymentRequest, context: grpc.aio.ServicerContext
    ) -> payments_service_pb2.GetPaymentResponse:
        caller = caller_of(context)
        payment = await self._db.read(lambda conn: store.get_payment(conn, request.order_id))
        if (
            payment is None
            or not payment.customer_id
            or not caller.may_read_customer(payment.customer_id)
        ):
            raise NotFoundError("payment", request.order_id)
        return payments_service_pb2.GetPaymentResponse(payment=payment_pb(payment))
