"""Stock and reservations: plain Python, no transport or storage.

A reservation holds every line of an order or none. Stock on hand never falls below what is
reserved, so available stock never goes negative: the store applies these rules inside one
serialised transaction, which is what keeps concurrent reservations from overselling.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from runtime.errors import FailedPreconditionError


class ReservationStatus(Enum):
    RESERVED = "RESERVED"
    RELEASED = "RELEASED"
    COMMITTED = "COMMITTED"
    REJECTED = "REJECTED"


@dataclass(frozen=True)
class StockLine:
    product_id: str
    quantity: int


@dataclass(frozen=True)
class Product:
    product_id: str
    sku: str
    name: str
    unit_price_minor: int
    currency_code: str
    stock_on_hand: int
    stock_reserved: int
    create_time: float
    update_time: float
    version: int

    @property
    def stock_available(self) -> int:
        return self.stock_on_hand - self.stock_reserved

    def adjusted(self, delta: int, at: float) -> Product:
        on_hand = self.stock_on_hand + delta
        if on_hand < self.stock_reserved:
            raise FailedPreconditionError(
                "STOCK_BELOW_RESERVED",
                f"cannot remove {-delta} units of {self.product_id}: {self.stock_on_hand} on hand,"
                f" {self.stock_reserved} reserved",
            )
        return replace(self, stock_on_hand=on_hand, update_time=at)


@dataclass(frozen=True)
class Reservation:
    order_id: str
    status: ReservationStatus
    lines: tuple[StockLine, ...]
    reason: str
    version: int
    create_time: float
    update_time: float


@dataclass(frozen=True)
class NewProduct:
    sku: str
    name: str
    unit_price_minor: int
    currency_code: str
    initial_stock: int


def merge_lines(lines: list[StockLine]) -> tuple[StockLine, ...]:
    """One line per product, quantities added, in a stable order."""
    totals: dict[str, int] = {}
    for line in lines:
        totals[line.product_id] = totals.get(line.product_id, 0) + line.quantity
    return tuple(StockLine(pid, qty) for pid, qty in sorted(totals.items()))


def shortfalls(products: dict[str, Product], lines: tuple[StockLine, ...]) -> list[str]:
    """Why each line cannot be held, empty when all can."""
    problems = []
    for line in lines:
        product = products.get(line.product_id)
        if product is None:
            problems.append(f"unknown product {line.product_id}")
        elif line.quantity <= 0:
            problems.append(f"quantity for {line.product_id} must be positive")
        elif product.stock_available < line.quantity:
            problems.append(
                f"insufficient stock for {line.product_id}: requested {line.quantity},"
                f" available {product.stock_available}"
            )
    if not lines:
        problems.append("no lines to reserve")
    return problems
