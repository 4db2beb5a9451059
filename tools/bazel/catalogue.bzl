"""Generated from runtime/catalogue.py by `python -m tools.catalogue`; do not edit.

Starlark cannot import Python, so the catalogue's lists that BUILD files need are written out here."""

# Every process of the shop (stand-ins included), for test targets that start the whole saga.
SHOP_SERVICES = [
    "//services/orders:orders_lib",
    "//services/inventory:inventory_lib",
    "//standins/paygate:paygate_lib",
    "//services/payments:payments_lib",
]
