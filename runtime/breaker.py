"""Circuit breakers that hold under asyncio concurrency.

aiobreaker 1.2 keeps the state (CLOSED, OPEN, HALF_OPEN), its storage, the reset timer and the
listeners; admission and counting are done here, without an await between check and update,
because aiobreaker as shipped lets every concurrent caller through in HALF_OPEN and does not
count cancellations. Here:
- OPEN fails at once (BreakerOpenError) until the reset timeout has passed;
- HALF_OPEN lets exactly `half_open_max_calls` trial calls through; the rest fail at once;
  a trial's success closes the breaker, its failure opens it again;
- cancellations and deadline expiries count as failures (`is_failure` decides for errors).
Every breaker is registered by callee name so diagnostics can report them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from aiobreaker import CircuitBreaker, CircuitBreakerListener, CircuitBreakerState
from aiobreaker.state import CircuitBreakerBaseState

from runtime.logs import get_logger
from runtime.metrics import Reading, gauge

log = get_logger(__name__)
T = TypeVar("T")

_BREAKERS: dict[str, Breaker] = {}


class BreakerOpenError(Exception):
    def __init__(self, callee: str, state: str, retry_after_s: float) -> None:
        self.callee = callee
        self.state = state
        self.retry_after_s = retry_after_s
        super().__init__(
            f"{callee} is unavailable: circuit breaker {state}; next trial in {retry_after_s:.1f}s"
        )


class _TransitionLog(CircuitBreakerListener):  # type: ignore[misc]
    def state_change(
        self,
        breaker: CircuitBreaker,
        old: CircuitBreakerBaseState | None,
        new: CircuitBreakerBaseState,
    ) -> None:
        log.warning(
            "breaker_state_changed",
            callee=breaker.name,
            old=old.state.name if old else None,
            new=new.state.name,
            failures=breaker.fail_counter,
        )


class Breaker:
    def __init__(
        self, callee: str, fail_max: int, reset_timeout_s: float, half_open_max_calls: int = 1
    ) -> None:
        self.callee = callee
        self.fail_max = fail_max
        self.reset_timeout_s = reset_timeout_s
        self.half_open_max_calls = half_open_max_calls
        self._cb = CircuitBreaker(
            fail_max=fail_max,
            timeout_duration=timedelta(seconds=reset_timeout_s),
            listeners=[_TransitionLog()],
            name=callee,
        )
        self._trials_in_flight = 0
        _BREAKERS[callee] = self

    @property
    def state(self) -> str:
        return str(self._cb.current_state.name)

    @property
    def failures(self) -> int:
        return int(self._cb.fail_counter)

    def retry_time(self) -> datetime | None:
        """While OPEN: when a trial call will be let through (naive UTC, as aiobreaker stores
        it; its own `opens_at` compares that with local time, so it is not used)."""
        opened_at = self._cb._state_storage.opened_at
        if self._cb.current_state is CircuitBreakerState.OPEN and opened_at is not None:
            return opened_at + self._cb.timeout_duration  # type: ignore[no-any-return]
        return None

    def _retry_after_s(self) -> float:
        at = self.retry_time()
        return max(0.0, (at - datetime.utcnow()).total_seconds()) if at else 0.0

    def _admit(self) -> bool:
        """Lets a call through or raises BreakerOpenError; True for a half-open trial."""
        retry_time = self.retry_time()
        if retry_time is not None:
            if datetime.utcnow() < retry_time:
                raise BreakerOpenError(self.callee, "OPEN", self._retry_after_s())
            self._cb.half_open()
        if self._cb.current_state is CircuitBreakerState.HALF_OPEN:
            if self._trials_in_flight >= self.half_open_max_calls:
                raise BreakerOpenError(
                    self.callee, "HALF_OPEN (trial call in flight)", self.reset_timeout_s
                )
            self._trials_in_flight += 1
            return True
        return False

    def _failed(self, trial: bool) -> None:
        if trial or self._cb.current_state is CircuitBreakerState.HALF_OPEN:
            self._cb.open()
            return
        if self._cb.current_state is CircuitBreakerState.CLOSED:
            self._cb._inc_counter()
            if self._cb.fail_counter >= self.fail_max:
                self._cb.open()

    def _succeeded(self, trial: bool) -> None:
        if trial:
            self._cb.close()
        elif self._cb.current_state is CircuitBreakerState.CLOSED and self._cb.fail_counter:
            self._cb._state_storage.reset_counter()

    async def call(
        self, fn: Callable[[], Awaitable[T]], is_failure: Callable[[BaseException], bool]
    ) -> T:
        trial = self._admit()
        try:
            result = await fn()
        except asyncio.CancelledError:
            self._failed(trial)
            raise
        except Exception as error:
            if is_failure(error):
                self._failed(trial)
            else:
                self._succeeded(trial)  # the callee answered, about the request: it is healthy
            raise
        else:
            self._succeeded(trial)
            return result
        finally:
            if trial:
                self._trials_in_flight -= 1


def all_breakers() -> list[Breaker]:
    return list(_BREAKERS.values())


BREAKER_STATES = ("CLOSED", "OPEN", "HALF_OPEN")


async def readings() -> list[Reading]:
    """One gauge per breaker and state, 1 for the state it is in (Prometheus' usual shape for
    an enum: `concord_breaker_state{callee="inventory",state="OPEN"} == 1` alerts)."""
    found = []
    for b in all_breakers():
        current = b.state
        for state in BREAKER_STATES:
            found.append(
                gauge(
                    "concord_breaker_state",
                    "1 for the state each circuit breaker is in, 0 for the others",
                    1 if state == current else 0,
                    callee=b.callee,
                    state=state,
                )
            )
        found.append(
            gauge(
                "concord_breaker_failures",
                "Consecutive failures counted by a closed breaker",
                b.failures,
                callee=b.callee,
            )
        )
    return found
