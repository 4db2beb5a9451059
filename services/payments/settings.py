"""Settings particular to payments; the common ones are in services/common/settings.py."""

from __future__ import annotations

import os
from dataclasses import dataclass

from services.common.clients import CallPolicy


@dataclass(frozen=True)
class PaymentsSettings:
    provider_address: str
    provider: CallPolicy
    provider_poll_interval_s: float

    @classmethod
    def from_env(cls) -> PaymentsSettings:
        env = os.environ.get
        return cls(
            provider_address=env(
                "CONCORD_PAYGATE_ADDRESS", f"127.0.0.1:{env('CONCORD_PAYGATE_PORT', '50054')}"
            ),
            provider=CallPolicy(
                deadline_s=float(env("CONCORD_PROVIDER_DEADLINE_S", "2")),
                breaker_fail_max=int(env("CONCORD_PROVIDER_BREAKER_FAIL_MAX", "5")),
                breaker_reset_timeout_s=float(env("CONCORD_PROVIDER_BREAKER_RESET_TIMEOUT_S", "5")),
                retry_max_attempts=int(env("CONCORD_PROVIDER_RETRY_MAX_ATTEMPTS", "2")),
                retry_base_backoff_s=float(env("CONCORD_PROVIDER_RETRY_BASE_BACKOFF_S", "0.1")),
            ),
            provider_poll_interval_s=float(env("CONCORD_PROVIDER_POLL_INTERVAL_S", "0.5")),
        )
