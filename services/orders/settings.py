"""Settings particular to orders; the common ones are in services/common/settings.py."""

from __future__ import annotations

import os
from dataclasses import dataclass

from services.common.clients import CallPolicy


@dataclass(frozen=True)
class OrdersSettings:
    snapshot_every: int
    step_timeout_s: float
    saga_poll_interval_s: float
    pricing: CallPolicy

    @classmethod
    def from_env(cls) -> OrdersSettings:
        env = os.environ.get
        return cls(
            snapshot_every=int(env("CONCORD_ORDERS_SNAPSHOT_EVERY", "5")),
            step_timeout_s=float(env("CONCORD_ORDERS_STEP_TIMEOUT_S", "30")),
            saga_poll_interval_s=float(env("CONCORD_ORDERS_SAGA_POLL_INTERVAL_S", "1")),
            pricing=CallPolicy(
                deadline_s=float(env("CONCORD_PRICING_DEADLINE_S", "2")),
                breaker_fail_max=int(env("CONCORD_PRICING_BREAKER_FAIL_MAX", "5")),
                breaker_reset_timeout_s=float(env("CONCORD_PRICING_BREAKER_RESET_TIMEOUT_S", "10")),
            ),
        )
