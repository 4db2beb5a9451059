"""Inventory: products, prices, stock and per-order reservations."""
