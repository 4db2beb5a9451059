"""Settings particular to payments; the common ones are in runtime/settings.py."""

from __future__ import annotations

from dataclasses import dataclass

from runtime import catalogue
from runtime.clients import CallPolicy
from runtime.settings import env_float, env_int, env_str


@dataclass(frozen=True)
class PaymentsSettings:
    provider_address: str
    provider: CallPolicy
    provider_poll_interval_s: float

    @classmethod
    def from_env(cls) -> PaymentsSettings:
        paygate = catalogue.process("paygate")
        port = env_int(paygate.port_env, paygate.default_port)
        return cls(
            provider_address=env_str("CONCORD_PAYGATE_ADDRESS", f"127.0.0.1:{port}"),
            provider=CallPolicy(
                deadline_s=env_float("CONCORD_PROVIDER_DEADLINE_S", 2.0),
                breaker_fail_max=env_int("CONCORD_PROVIDER_BREAKER_FAIL_MAX", 5),
                breaker_reset_timeout_s=env_float("CONCORD_PROVIDER_BREAKER_RESET_TIMEOUT_S", 5.0),
                retry_max_attempts=env_int("CONCORD_PROVIDER_RETRY_MAX_ATTEMPTS", 2),
                retry_base_backoff_s=env_float("CONCORD_PROVIDER_RETRY_BASE_BACKOFF_S", 0.1),
            ),
            provider_poll_interval_s=env_float("CONCORD_PROVIDER_POLL_INTERVAL_S", 0.5),
        )
