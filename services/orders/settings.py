"""Settings particular to orders; the common ones are in runtime/settings.py."""

from __future__ import annotations

from dataclasses import dataclass

from runtime.clients import CallPolicy
from runtime.settings import env_float, env_int


@dataclass(frozen=True)
class OrdersSettings:
    snapshot_every: int
    step_timeout_s: float
    saga_poll_interval_s: float
    cancellation_alert_s: float
    pricing: CallPolicy

    @classmethod
    def from_env(cls) -> OrdersSettings:
        return cls(
            snapshot_every=env_int("CONCORD_ORDERS_SNAPSHOT_EVERY", 5),
            step_timeout_s=env_float("CONCORD_ORDERS_STEP_TIMEOUT_S", 30.0),
            saga_poll_interval_s=env_float("CONCORD_ORDERS_SAGA_POLL_INTERVAL_S", 1.0),
            cancellation_alert_s=env_float("CONCORD_ORDERS_CANCELLATION_ALERT_S", 120.0),
            pricing=CallPolicy(
                deadline_s=env_float("CONCORD_PRICING_DEADLINE_S", 2.0),
                breaker_fail_max=env_int("CONCORD_PRICING_BREAKER_FAIL_MAX", 5),
                breaker_reset_timeout_s=env_float("CONCORD_PRICING_BREAKER_RESET_TIMEOUT_S", 10.0),
            ),
        )
