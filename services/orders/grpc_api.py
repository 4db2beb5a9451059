"""OrdersService and OrdersAdminService over gRPC: who is calling, one application call, and
the translation to and from protobuf. Contract rules run before these (the interceptor).

Every admin method needs the admin role: internal callers have it, and the gateway forwards the
read-only views (GetSaga, GetOrderTrace) to any valid token, so the check is here."""

from __future__ import annotations

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from shop.orders.v1 import events_pb2 as ev
from shop.orders.v1 import orders_pb2, orders_service_pb2, orders_service_pb2_grpc

from runtime.caller import Role, caller_of
from runtime.ids import timestamp
from runtime.trace_files import SpanRecord, TraceFiles
from services.orders import saga
from services.orders.application import Orders
from services.orders.domain import Line, Order

SERVICE_NAME = orders_service_pb2.DESCRIPTOR.services_by_name["OrdersService"].full_name
ADMIN_SERVICE_NAME = orders_service_pb2.DESCRIPTOR.services_by_name["OrdersAdminService"].full_name
EVENT_FIELDS = {
    field.message_type.full_name: field.name
    for field in ev.OrderEvent.DESCRIPTOR.oneofs_by_name["event"].fields
}


def order_pb(o: Order) -> orders_pb2.Order:
    return orders_pb2.Order(
        order_id=o.order_id,
        customer_id=o.customer_id,
        status=f"ORDER_STATUS_{o.status.value}",
        lines=[
            orders_pb2.OrderLine(
                product_id=x.product_id, quantity=x.quantity, unit_price_minor=x.unit_price_minor
            )
            for x in o.lines
        ],
        total_minor=o.total_minor,
        currency_code=o.currency_code,
        rejection_reason=o.rejection_reason,
        version=o.version,
        create_time=timestamp(o.create_time),
        update_time=timestamp(o.update_time),
    )


def saga_pb(s: saga.Saga) -> orders_pb2.Saga:
    result = orders_pb2.Saga(
        order_id=s.order_id,
        step=f"SAGA_STEP_{s.step.value}",
        steps=[
            orders_pb2.SagaStepTime(step=f"SAGA_STEP_{step}", enter_time=timestamp(at))
            for step, at in sorted(s.entered.items(), key=lambda item: item[1])
        ],
        attempt=s.attempt,
        reason=s.reason,
        pending_commands=[
            orders_pb2.SagaCommand(type_name=c.type_name, command_id=c.command_id)
            for c in saga.pending_commands(s)
        ],
        resolution=s.resolution,
        commands_sent=[
            orders_pb2.SagaCommand(type_name=type_name, command_id=command_id)
            for type_name, command_id in s.commands_sent
        ],
    )
    if s.step in saga.OPEN_STEPS:
        result.deadline.CopyFrom(timestamp(s.deadline))
    if s.step_time:
        result.step_time.CopyFrom(timestamp(s.step_time))
    return result


def event_pb(event: Message) -> ev.OrderEvent:
    wrapper = ev.OrderEvent()
    getattr(wrapper, EVENT_FIELDS[event.DESCRIPTOR.full_name]).CopyFrom(event)
    return wrapper


def customer_of(context: grpc.aio.ServicerContext) -> str:
    """The calling customer, whom the gateway names from the token's subject. Orders belong to
    customers, so even a trusted internal caller must say on whose behalf it acts."""
    return caller_of(context).require_customer()


class OrdersApi(orders_service_pb2_grpc.OrdersServiceServicer):
    def __init__(self, orders: Orders) -> None:
        self._orders = orders

    async def PlaceOrder(
        self, request: orders_service_pb2.PlaceOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_service_pb2.PlaceOrderResponse:
        order = await self._orders.place_order(
            customer_of(context),
            [Line(x.product_id, x.quantity) for x in request.lines],
            request.idempotency_key,
        )
        return orders_service_pb2.PlaceOrderResponse(order=order_pb(order))

    async def GetOrder(
        self, request: orders_service_pb2.GetOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_service_pb2.GetOrderResponse:
        order = await self._orders.get_order(
            customer_of(context),
            request.order_id,
            request.as_of_version,
            request.as_of_time if request.HasField("as_of_time") else None,
        )
        return orders_service_pb2.GetOrderResponse(order=order_pb(order))

    async def ListOrders(
        self, request: orders_service_pb2.ListOrdersRequest, context: grpc.aio.ServicerContext
    ) -> orders_service_pb2.ListOrdersResponse:
        page = await self._orders.list_orders(
            customer_of(context), request.page_size, request.page_token
        )
        return orders_service_pb2.ListOrdersResponse(
            orders=[order_pb(o) for o in page.orders], next_page_token=page.next_page_token
        )

    async def CancelOrder(
        self, request: orders_service_pb2.CancelOrderRequest, context: grpc.aio.ServicerContext
    ) -> orders_service_pb2.CancelOrderResponse:
        order = await self._orders.cancel_order(
            customer_of(context), request.order_id, request.reason
        )
        return orders_service_pb2.CancelOrderResponse(order=order_pb(order))

    async def ListOrderEvents(
        self, request: orders_service_pb2.ListOrderEventsRequest, context: grpc.aio.ServicerContext
    ) -> orders_service_pb2.ListOrderEventsResponse:
        events = await self._orders.list_order_events(customer_of(context), request.order_id)
        return orders_service_pb2.ListOrderEventsResponse(events=[event_pb(e) for e in events])


TRACE_ATTRIBUTE_PREFIXES = ("order.", "rpc.", "messaging.destination", "messaging.message.")
"""The span attributes GetOrderTrace returns: what an operator reads (the order, the RPC and its
status, the message), not the instrumentation's internals."""


def trace_pb(trace_id: str, spans: list[SpanRecord]) -> orders_service_pb2.Trace:
    start = min(s.start_ns for s in spans)
    end = max(s.end_ns for s in spans)
    return orders_service_pb2.Trace(
        trace_id=trace_id,
        start_time=timestamp_of_ns(start),
        duration_ms=(end - start) / 1e6,
        services=sorted({s.service for s in spans}),
        spans=[
            orders_service_pb2.TraceSpan(
                span_id=s.span_id,
                parent_span_id=s.parent_span_id or "",
                service=s.service,
                name=s.name,
                kind=s.kind,
                start_offset_ms=(s.start_ns - start) / 1e6,
                duration_ms=s.duration_ms,
                status=s.status,
                attributes={
                    key: str(value)
                    for key, value in s.attributes.items()
                    if key.startswith(TRACE_ATTRIBUTE_PREFIXES)
                },
            )
            for s in spans
        ],
    )


def timestamp_of_ns(ns: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(ns)
    return stamp


def require_admin(context: grpc.aio.ServicerContext) -> None:
    caller_of(context).require_role(Role.ADMIN)


class OrdersAdminApi(orders_service_pb2_grpc.OrdersAdminServiceServicer):
    def __init__(self, orders: Orders, traces: TraceFiles) -> None:
        self._orders = orders
        self._traces = traces

    async def RebuildReadModels(
        self,
        request: orders_service_pb2.RebuildReadModelsRequest,
        context: grpc.aio.ServicerContext,
    ) -> orders_service_pb2.RebuildReadModelsResponse:
        require_admin(context)
        orders, events = await self._orders.rebuild_read_models()
        return orders_service_pb2.RebuildReadModelsResponse(
            orders_rebuilt=orders, events_replayed=events
        )

    async def ListSagas(
        self, request: orders_service_pb2.ListSagasRequest, context: grpc.aio.ServicerContext
    ) -> orders_service_pb2.ListSagasResponse:
        require_admin(context)
        step = orders_pb2.SagaStep.Name(request.step).removeprefix("SAGA_STEP_")
        page = await self._orders.list_sagas(
            None if step == "UNSPECIFIED" else saga.SagaStep(step),
            request.stuck_for_s,
            request.page_size,
            request.page_token,
        )
        return orders_service_pb2.ListSagasResponse(
            sagas=[saga_pb(s) for s in page.sagas], next_page_token=page.next_page_token
        )

    async def GetSaga(
        self, request: orders_service_pb2.GetSagaRequest, context: grpc.aio.ServicerContext
    ) -> orders_service_pb2.GetSagaResponse:
        require_admin(context)
        return orders_service_pb2.GetSagaResponse(
            saga=saga_pb(await self._orders.get_saga(request.order_id))
        )

    async def GetOrderTrace(
        self, request: orders_service_pb2.GetOrderTraceRequest, context: grpc.aio.ServicerContext
    ) -> orders_service_pb2.GetOrderTraceResponse:
        require_admin(context)
        found = await self._traces.order_traces(request.order_id)
        return orders_service_pb2.GetOrderTraceResponse(
            traces=[trace_pb(trace_id, spans) for trace_id, spans in found.items()]
        )

    async def RetryCompensation(
        self,
        request: orders_service_pb2.RetryCompensationRequest,
        context: grpc.aio.ServicerContext,
    ) -> orders_service_pb2.RetryCompensationResponse:
        require_admin(context)
        retried = await self._orders.retry_compensation(request.order_id)
        return orders_service_pb2.RetryCompensationResponse(saga=saga_pb(retried))

    async def ResolveSaga(
        self, request: orders_service_pb2.ResolveSagaRequest, context: grpc.aio.ServicerContext
    ) -> orders_service_pb2.ResolveSagaResponse:
        require_admin(context)
        resolved = await self._orders.resolve_saga(request.order_id, request.reason)
        return orders_service_pb2.ResolveSagaResponse(saga=saga_pb(resolved))

    async def ListOverdueCancellations(
        self,
        request: orders_service_pb2.ListOverdueCancellationsRequest,
        context: grpc.aio.ServicerContext,
    ) -> orders_service_pb2.ListOverdueCancellationsResponse:
        require_admin(context)
        overdue = await self._orders.overdue_cancellations(
            request.cancelling_for_s or self._orders.config.cancellation_alert_s
        )
        return orders_service_pb2.ListOverdueCancellationsResponse(
            cancellations=[
                orders_service_pb2.OverdueCancellation(
                    order_id=o.order_id,
                    since_time=timestamp(o.update_time),
                    stock_released=o.stock_released,
                    payment_refunded=o.payment_refunded,
                )
                for o in sorted(overdue, key=lambda o: o.update_time)
            ]
        )
