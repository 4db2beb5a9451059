"""Crash points for the crash tests: `CONCORD_CRASH_AT=<point>[:<detail>]` makes the process
exit at once (as kill -9 would) when it reaches that point.

Off unless the variable is set; the crash tests restart the process without it. Points:
`consumer.after_commit:<type name>` (a handler committed, the message is not yet acked),
`outbox.after_publish:<type name>` (JetStream has the message, the outbox row is not yet marked
sent) and `outbox.mid_window:<type name>` (JetStream acknowledged the message while later ones
of the relay's window are still in flight, none of them marked sent).
"""

from __future__ import annotations

import os

from runtime.logs import get_logger

log = get_logger(__name__)


def crash_point(point: str, detail: str = "") -> None:
    wanted = os.environ.get("CONCORD_CRASH_AT")
    if not wanted:
        return
    name, _, wanted_detail = wanted.partition(":")
    if name == point and (not wanted_detail or wanted_detail == detail):
        log.warning("crash_point_reached", point=point, detail=detail)
        os._exit(137)


class InjectedFailureError(RuntimeError):
    pass


def failure_point(point: str, detail: str = "") -> None:
    """`CONCORD_FAIL_AT=<point>[:<detail>]` makes this point raise, every time: how tests drive
    a handler into retries and the dead-letter subject (`consumer.handler:<type name>`), or
    stops a consumer before it fetches (`consumer.fetch:<durable>`), so its lag grows. Off
    unless set."""
    wanted = os.environ.get("CONCORD_FAIL_AT")
    if not wanted:
        return
    name, _, wanted_detail = wanted.partition(":")
    if name == point and (not wanted_detail or wanted_detail == detail):
        raise InjectedFailureError(f"injected failure at {point} {detail}".strip())
