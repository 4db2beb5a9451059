"""Collects every problem with a request before answering, so a caller fixes them all at once."""

from __future__ import annotations

import re

from services.common.errors import FieldViolation, InvalidArgumentError

CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")


class Violations:
    def __init__(self) -> None:
        self._items: list[FieldViolation] = []

    def check(self, ok: bool, field: str, description: str) -> bool:
        if not ok:
            self._items.append(FieldViolation(field, description))
        return ok

    def text(self, value: str, field: str, *, min_len: int = 1, max_len: int) -> bool:
        if not value.strip() and min_len > 0:
            return self.check(False, field, "is required")
        return self.check(
            min_len <= len(value) <= max_len,
            field,
            f"must be {min_len} to {max_len} characters, got {len(value)}",
        )

    def currency(self, value: str, field: str = "currency_code") -> bool:
        return self.check(
            bool(CURRENCY_CODE.match(value)),
            field,
            f"must be an ISO 4217 code of three upper-case letters, got {value[:16]!r}",
        )

    def raise_if_any(self) -> None:
        if self._items:
            raise InvalidArgumentError(list(self._items))
