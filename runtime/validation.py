"""Collects every problem with a request before answering, so a caller fixes them all at once."""

from __future__ import annotations

import re

from google.protobuf.timestamp_pb2 import Timestamp

from runtime.errors import FieldViolation, InvalidArgumentError

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


MIN_TIMESTAMP_SECONDS = -62_135_596_800
"""0001-01-01T00:00:00Z, the earliest instant a google.protobuf.Timestamp may hold."""
MAX_TIMESTAMP_SECONDS = 253_402_300_799
"""9999-12-31T23:59:59Z, the latest."""
MAX_TIMESTAMP_NANOS = 999_999_999


def check_timestamp(v: Violations, value: Timestamp, field: str) -> bool:
    """Whether a google.protobuf.Timestamp input is one the type allows (protobuf's own
    conversions, ToNanoseconds and ToDatetime, raise ValueError on anything else): check every
    Timestamp a request carries with this before converting it."""
    seconds, nanos = value.seconds, value.nanos
    ok_seconds = v.check(
        MIN_TIMESTAMP_SECONDS <= seconds <= MAX_TIMESTAMP_SECONDS,
        f"{field}.seconds",
        "must be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z "
        f"({MIN_TIMESTAMP_SECONDS} to {MAX_TIMESTAMP_SECONDS}), got {seconds}",
    )
    ok_nanos = v.check(
        0 <= nanos <= MAX_TIMESTAMP_NANOS,
        f"{field}.nanos",
        f"must be 0 to {MAX_TIMESTAMP_NANOS}, got {nanos}",
    )
    return ok_seconds and ok_nanos
