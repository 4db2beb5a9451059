"""Payments: customer credit accounts and the payment held or charged for each order."""
