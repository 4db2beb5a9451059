"""The provider's memory of authorisations by idempotency key, with void tombstones."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from enum import Enum


class Outcome(Enum):
    APPROVED = "APPROVED"
    DECLINED = "DECLINED"
    VOIDED = "VOIDED"


@dataclass(frozen=True)
class Authorization:
    idempotency_key: str
    authorization_id: str
    outcome: Outcome
    amount_minor: int
    currency_code: str
    decline_message: str = ""


class Ledger:
    def __init__(self) -> None:
        self._by_key: dict[str, Authorization] = {}

    def get(self, key: str) -> Authorization | None:
        return self._by_key.get(key)

    def record(
        self, key: str, amount_minor: int, currency_code: str, decline_message: str = ""
    ) -> Authorization:
        """The first outcome for a key wins; a voided key stays voided and is never charged."""
        existing = self._by_key.get(key)
        if existing is not None:
            return existing
        outcome = Outcome.DECLINED if decline_message else Outcome.APPROVED
        auth = Authorization(
            key,
            f"pg_{uuid.uuid4().hex[:16]}",
            outcome,
            amount_minor,
            currency_code,
            decline_message,
        )
        self._by_key[key] = auth
        return auth

    def void(self, key: str) -> Authorization:
        existing = self._by_key.get(key)
        if existing is None:
            existing = Authorization(key, f"pg_{uuid.uuid4().hex[:16]}", Outcome.VOIDED, 0, "")
        voided = replace(existing, outcome=Outcome.VOIDED)
        self._by_key[key] = voided
        return voided

    def approved_total(self) -> int:
        return sum(a.amount_minor for a in self._by_key.values() if a.outcome is Outcome.APPROVED)
