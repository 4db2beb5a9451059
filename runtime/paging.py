"""Opaque page tokens: callers cannot forge a position, and a bad token is INVALID_ARGUMENT.

A token is the JSON of a position (the sort key of the last item of the page before) and an
HMAC-SHA256 of it, keyed by a random secret kept in the service's own database (created by
the `paging` migration group every service's database gets). So every instance sharing a
database accepts the tokens any of them issued, a restart keeps them valid, and nobody else
can make one. Even a correctly signed position is checked against the shape the caller
expects (types, finite numbers, bounded integers and strings) before it reaches a query:
a bad token is a caller's mistake, never a crash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
from collections.abc import Sequence
from typing import NoReturn

from runtime.database import Connection
from runtime.errors import FieldViolation, InvalidArgumentError

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_TOKEN_CHARS = 1024
"""No token this module issues comes near this; longer ones are refused before decoding."""
MAX_POSITION_STRING_CHARS = 256
MAX_POSITION_INT = 2**63 - 1
"""SQLite's INTEGER range, and far beyond any float a position holds."""
SIGNATURE_BYTES = 16
KEY_BYTES = 32

MIGRATIONS = [
    """CREATE TABLE page_token_key (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        secret BLOB NOT NULL
    )""",
    "INSERT INTO page_token_key (id, secret) VALUES (1, randomblob(32))",
]
"""The `paging` group of every service's database: one random signing key per database."""

Position = tuple[str | int | float, ...]
Shape = Sequence[type[str] | type[int] | type[float]]
"""The type of each element of a position, e.g. (float, str) for (create_time, order_id)."""


def page_size(requested: int) -> int:
    if requested < 0 or requested > MAX_PAGE_SIZE:
        raise InvalidArgumentError(
            [FieldViolation("page_size", f"must be 0 to {MAX_PAGE_SIZE}, got {requested}")]
        )
    return requested or DEFAULT_PAGE_SIZE


def load_key(conn: Connection) -> bytes:
    """The database's signing key (run inside a read transaction)."""
    row = conn.execute("SELECT secret FROM page_token_key WHERE id = 1").fetchone()
    if row is None or len(row[0]) != KEY_BYTES:
        raise RuntimeError("page_token_key is missing: the paging migrations did not run")
    return bytes(row[0])


def _refuse(why: str) -> NoReturn:
    raise InvalidArgumentError(
        [FieldViolation("page_token", f"is not a token this API issued ({why})")]
    )


def _no_constants(name: str) -> NoReturn:
    _refuse(f"{name} is not a position")


def _checked(value: object, kind: type) -> str | int | float:
    if kind is str:
        if isinstance(value, str) and len(value) <= MAX_POSITION_STRING_CHARS:
            return value
    elif kind is int:
        if type(value) is int and abs(value) <= MAX_POSITION_INT:
            return value
    elif kind is float:
        if type(value) is int and abs(value) <= MAX_POSITION_INT:
            return float(value)
        if type(value) is float and math.isfinite(value):
            return value
    _refuse("unexpected position")


class PageTokens:
    """Issues and reads a database's page tokens; one per process (Platform.page_tokens)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a page token key needs at least 16 bytes")
        self._key = key

    def _signature(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:SIGNATURE_BYTES]

    def encode(self, position: Position) -> str:
        payload = json.dumps(list(position), separators=(",", ":"), allow_nan=False).encode()
        return base64.urlsafe_b64encode(payload + self._signature(payload)).decode()

    def decode(self, token: str, shape: Shape) -> Position | None:
        """The position in `token` with one element per `shape` entry, or None for no token."""
        if not token:
            return None
        if len(token) > MAX_TOKEN_CHARS:
            _refuse("too long")
        try:
            raw = base64.urlsafe_b64decode(token.encode("ascii"))
        except (binascii.Error, ValueError):
            _refuse("not base64url")
        payload, signature = raw[:-SIGNATURE_BYTES], raw[-SIGNATURE_BYTES:]
        if len(raw) <= SIGNATURE_BYTES or not hmac.compare_digest(
            signature, self._signature(payload)
        ):
            _refuse("bad signature")
        try:
            position = json.loads(payload, parse_constant=_no_constants)
        except (ValueError, UnicodeDecodeError):
            _refuse("not JSON")
        if not isinstance(position, list) or len(position) != len(shape):
            _refuse("unexpected position")
        return tuple(_checked(value, kind) for value, kind in zip(position, shape, strict=True))
