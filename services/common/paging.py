"""Opaque page tokens: callers cannot forge a position, and a bad token is INVALID_ARGUMENT."""

from __future__ import annotations

import base64
import binascii
import json

from services.common.errors import FieldViolation, InvalidArgumentError

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def page_size(requested: int) -> int:
    if requested < 0 or requested > MAX_PAGE_SIZE:
        raise InvalidArgumentError(
            [FieldViolation("page_size", f"must be 0 to {MAX_PAGE_SIZE}, got {requested}")]
        )
    return requested or DEFAULT_PAGE_SIZE


def encode_token(position: list[str | int | float]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


def decode_token(token: str) -> list[str | int | float] | None:
    if not token:
        return None
    try:
        position = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgumentError(
            [FieldViolation("page_token", "is not a token this API issued")]
        ) from exc
    if not isinstance(position, list):
        raise InvalidArgumentError([FieldViolation("page_token", "is not a token this API issued")])
    return position
