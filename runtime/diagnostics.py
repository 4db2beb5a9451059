"""OperationsService: what a service reports about itself (breakers, consumers, outbox), so
an operator or the dev CLI (`python -m tools.devstack diagnostics`) can see it."""

from __future__ import annotations

from datetime import UTC

import grpc
from concord.ops.v1 import ops_service_pb2, ops_service_pb2_grpc

from runtime import outbox
from runtime.breaker import all_breakers
from runtime.consumer import Consumer
from runtime.database import Database
from runtime.ids import timestamp

SERVICE_NAME = ops_service_pb2.DESCRIPTOR.services_by_name["OperationsService"].full_name


class DiagnosticsApi(ops_service_pb2_grpc.OperationsServiceServicer):
    def __init__(self, service: str, db: Database, consumers: list[Consumer]) -> None:
        self._service = service
        self._db = db
        self._consumers = consumers

    async def GetDiagnostics(
        self, request: ops_service_pb2.GetDiagnosticsRequest, context: grpc.aio.ServicerContext
    ) -> ops_service_pb2.GetDiagnosticsResponse:
        breakers = []
        for b in all_breakers():
            status = ops_service_pb2.BreakerStatus(
                callee=b.callee, state=b.state, failures=b.failures
            )
            retry_time = b.retry_time()
            if retry_time is not None:
                status.retry_time.CopyFrom(timestamp(retry_time.replace(tzinfo=UTC).timestamp()))
            breakers.append(status)
        return ops_service_pb2.GetDiagnosticsResponse(
            service=self._service,
            breakers=breakers,
            consumers=[
                ops_service_pb2.ConsumerStatus(
                    durable=c.sub.durable,
                    processed=c.stats.processed,
                    duplicates=c.stats.duplicates,
                    dead_lettered=c.stats.dead_lettered,
                )
                for c in self._consumers
            ],
            outbox_pending=await self._db.read(outbox.pending_count),
        )
