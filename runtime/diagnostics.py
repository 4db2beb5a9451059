"""OperationsService: what a service reports about itself (breakers, consumers, outbox), so
an operator or the dev CLI (`python -m tools.devstack diagnostics`) can see it, and its dead
letters, listed and replayed (`python -m tools.devstack dead-letters list|replay`)."""

from __future__ import annotations

from datetime import UTC

import grpc
from concord.ops.v1 import ops_service_pb2, ops_service_pb2_grpc

from runtime import outbox
from runtime.breaker import all_breakers
from runtime.consumer import Consumer
from runtime.database import Database
from runtime.dead_letters import DeadLetter, DeadLetters
from runtime.errors import FailedPreconditionError
from runtime.ids import timestamp
from runtime.paging import page_size

SERVICE_NAME = ops_service_pb2.DESCRIPTOR.services_by_name["OperationsService"].full_name


def dead_letter_pb(x: DeadLetter) -> ops_service_pb2.DeadLetter:
    return ops_service_pb2.DeadLetter(
        sequence=x.sequence,
        subject=x.subject,
        type_name=x.type_name,
        reason=x.reason,
        consumer=x.consumer,
        message_id=x.message_id,
        first_failure_time=timestamp(x.first_failure_time),
        dead_letter_time=timestamp(x.dead_letter_time),
        payload_json=x.payload_json,
        decode_error=x.decode_error,
    )


class DiagnosticsApi(ops_service_pb2_grpc.OperationsServiceServicer):
    def __init__(
        self,
        service: str,
        db: Database,
        consumers: list[Consumer],
        dead_letters: DeadLetters | None,
    ) -> None:
        """`dead_letters` is None for a process without a bus (the registry)."""
        self._service = service
        self._db = db
        self._consumers = consumers
        self._dead_letters = dead_letters

    def _letters(self) -> DeadLetters:
        if self._dead_letters is None:
            raise FailedPreconditionError(
                "NO_MESSAGE_BUS", f"{self._service} consumes no messages, so it has no dead letters"
            )
        return self._dead_letters

    async def ListDeadLetters(
        self, request: ops_service_pb2.ListDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> ops_service_pb2.ListDeadLettersResponse:
        page = await self._letters().list(page_size(request.page_size), request.page_token)
        return ops_service_pb2.ListDeadLettersResponse(
            dead_letters=[dead_letter_pb(x) for x in page.dead_letters],
            next_page_token=page.next_page_token,
        )

    async def ReplayDeadLetter(
        self, request: ops_service_pb2.ReplayDeadLetterRequest, context: grpc.aio.ServicerContext
    ) -> ops_service_pb2.ReplayDeadLetterResponse:
        letter, replay_id = await self._letters().replay(request.sequence)
        return ops_service_pb2.ReplayDeadLetterResponse(
            dead_letter=dead_letter_pb(letter), replay_message_id=replay_id
        )

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
