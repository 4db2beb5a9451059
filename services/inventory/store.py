"""Inventory's repository: products, reservations and the stock movement log, in portable
SQL (docs/platform.md)."""

from __future__ import annotations

import json

from runtime.database import Connection, Row
from services.inventory.domain import Product, Reservation, ReservationStatus, StockLine

MIGRATIONS = [
    """CREATE TABLE IF NOT EXISTS products (
        product_id TEXT PRIMARY KEY,
        sku TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        unit_price_minor INTEGER NOT NULL CHECK (unit_price_minor >= 0),
        currency_code TEXT NOT NULL,
        stock_on_hand INTEGER NOT NULL,
        stock_reserved INTEGER NOT NULL,
        create_time REAL NOT NULL,
        update_time REAL NOT NULL,
        version INTEGER NOT NULL,
        CHECK (stock_reserved >= 0 AND stock_on_hand >= stock_reserved)
    )""",
    """CREATE TABLE IF NOT EXISTS reservations (
        order_id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        lines TEXT NOT NULL,
        reason TEXT NOT NULL,
        version INTEGER NOT NULL,
        create_time REAL NOT NULL,
        update_time REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS stock_movements (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        product_id TEXT NOT NULL,
        delta_on_hand INTEGER NOT NULL,
        delta_reserved INTEGER NOT NULL,
        reason TEXT NOT NULL,
        at REAL NOT NULL
    )""",
]


def _product(r: Row) -> Product:
    return Product(
        product_id=r["product_id"],
        sku=r["sku"],
        name=r["name"],
        unit_price_minor=r["unit_price_minor"],
        currency_code=r["currency_code"],
        stock_on_hand=r["stock_on_hand"],
        stock_reserved=r["stock_reserved"],
        create_time=r["create_time"],
        update_time=r["update_time"],
        version=r["version"],
    )


def get_product(conn: Connection, product_id: str) -> Product | None:
    row = conn.execute("SELECT * FROM products WHERE product_id = ?", (product_id,)).fetchone()
    return _product(row) if row else None


def get_products(conn: Connection, product_ids: list[str]) -> dict[str, Product]:
    if not product_ids:
        return {}
    marks = ",".join("?" * len(product_ids))
    rows = conn.execute(f"SELECT * FROM products WHERE product_id IN ({marks})", product_ids)
    return {row["product_id"]: _product(row) for row in rows}


def sku_exists(conn: Connection, sku: str) -> bool:
    return conn.execute("SELECT 1 FROM products WHERE sku = ?", (sku,)).fetchone() is not None


def list_products(conn: Connection, after_id: str | None, limit: int) -> list[Product]:
    rows = conn.execute(
        "SELECT * FROM products WHERE product_id > ? ORDER BY product_id LIMIT ?",
        (after_id or "", limit),
    )
    return [_product(row) for row in rows]


def insert_product(conn: Connection, p: Product) -> None:
    conn.execute(
        "INSERT INTO products VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            p.product_id,
            p.sku,
            p.name,
            p.unit_price_minor,
            p.currency_code,
            p.stock_on_hand,
            p.stock_reserved,
            p.create_time,
            p.update_time,
            p.version,
        ),
    )


def move_stock(
    conn: Connection, product_id: str, on_hand: int, reserved: int, reason: str, at: float
) -> None:
    """Changes a product's stock by the given deltas, logs the movement, bumps the version."""
    conn.execute(
        "UPDATE products SET stock_on_hand = stock_on_hand + ?, stock_reserved = stock_reserved + ?,"
        " update_time = ?, version = version + 1 WHERE product_id = ?",
        (on_hand, reserved, at, product_id),
    )
    conn.execute(
        "INSERT INTO stock_movements (product_id, delta_on_hand, delta_reserved, reason, at)"
        " VALUES (?, ?, ?, ?, ?)",
        (product_id, on_hand, reserved, reason, at),
    )


def _reservation(r: Row) -> Reservation:
    return Reservation(
        order_id=r["order_id"],
        status=ReservationStatus(r["status"]),
        lines=tuple(StockLine(pid, qty) for pid, qty in json.loads(r["lines"])),
        reason=r["reason"],
        version=r["version"],
        create_time=r["create_time"],
        update_time=r["update_time"],
    )


def get_reservation(conn: Connection, order_id: str) -> Reservation | None:
    row = conn.execute("SELECT * FROM reservations WHERE order_id = ?", (order_id,)).fetchone()
    return _reservation(row) if row else None


def save_reservation(conn: Connection, r: Reservation) -> None:
    conn.execute(
        "INSERT INTO reservations VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, lines = excluded.lines,"
        " reason = excluded.reason, version = excluded.version, update_time = excluded.update_time",
        (
            r.order_id,
            r.status.value,
            json.dumps([[line.product_id, line.quantity] for line in r.lines]),
            r.reason,
            r.version,
            r.create_time,
            r.update_time,
        ),
    )
