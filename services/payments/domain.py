"""Credit and payments: plain Python, no transport or storage.

An account's available credit is its limit less what is authorised or captured. One payment
per order: repeating a command for the same order never holds or charges twice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

MAX_AMOUNT_MINOR = 10**12


class PaymentStatus(Enum):
    AUTHORIZED = "AUTHORIZED"
    DECLINED = "DECLINED"
    VOIDED = "VOIDED"
    CAPTURED = "CAPTURED"
    REFUNDED = "REFUNDED"
    PENDING = "PENDING"
    """Credit is held while the provider is asked."""


class DeclineReason(Enum):
    INSUFFICIENT_CREDIT = "INSUFFICIENT_CREDIT"
    UNKNOWN_CUSTOMER = "UNKNOWN_CUSTOMER"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    PROVIDER_DECLINED = "PROVIDER_DECLINED"
    PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE"
    INVALID_AMOUNT = "INVALID_AMOUNT"


@dataclass(frozen=True)
class Account:
    customer_id: str
    credit_limit_minor: int
    available_minor: int
    currency_code: str
    create_time: float
    update_time: float


@dataclass(frozen=True)
class Payment:
    order_id: str
    customer_id: str
    amount_minor: int
    currency_code: str
    status: PaymentStatus
    decline_reason: DeclineReason | None
    decline_message: str
    version: int
    create_time: float
    update_time: float

    def moved_to(self, status: PaymentStatus, at: float) -> Payment:
        return replace(self, status=status, version=self.version + 1, update_time=at)

    @property
    def holds_credit(self) -> bool:
        return self.status in (
            PaymentStatus.AUTHORIZED,
            PaymentStatus.CAPTURED,
            PaymentStatus.PENDING,
        )


@dataclass(frozen=True)
class Decline:
    reason: DeclineReason
    message: str


def authorisation_decline(
    account: Account | None, amount_minor: int, currency_code: str
) -> Decline | None:
    """Why an authorisation must be declined, or None when the account can hold the amount."""
    if amount_minor <= 0 or amount_minor > MAX_AMOUNT_MINOR:
        return Decline(DeclineReason.INVALID_AMOUNT, f"amount {amount_minor} is not payable")
    if account is None:
        return Decline(DeclineReason.UNKNOWN_CUSTOMER, "no credit account for this customer")
    if account.currency_code != currency_code:
        return Decline(
            DeclineReason.CURRENCY_MISMATCH,
            f"account is in {account.currency_code}, amount in {currency_code}",
        )
    if account.available_minor < amount_minor:
        return Decline(
            DeclineReason.INSUFFICIENT_CREDIT,
            f"insufficient credit: {amount_minor} requested, {account.available_minor} available",
        )
    return None
