"""Page tokens (runtime/paging.py): only positions this service issued come back, and
every other token, however it was made, is INVALID_ARGUMENT with a page_token violation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from runtime import paging
from runtime.errors import InvalidArgumentError
from runtime.paging import PageTokens
from runtime.sqlite_database import SqliteDatabase

KEY = bytes(range(32))
ORDER_POSITION = (float, str)


def signed(payload: str, key: bytes = KEY) -> str:
    """A token made the way the module makes them: what a forger who knew the key could do."""
    raw = payload.encode()
    signature = hmac.new(key, raw, hashlib.sha256).digest()[: paging.SIGNATURE_BYTES]
    return base64.urlsafe_b64encode(raw + signature).decode()


def unsigned(payload: str) -> str:
    """The old token format: base64 of the JSON position, nothing else."""
    return base64.urlsafe_b64encode(payload.encode()).decode()


def refused(token: str) -> str:
    with pytest.raises(InvalidArgumentError) as err:
        PageTokens(KEY).decode(token, ORDER_POSITION)
    assert [v.field for v in err.value.violations] == ["page_token"]
    return err.value.violations[0].description


def test_an_issued_token_reads_back_its_position() -> None:
    tokens = PageTokens(KEY)
    token = tokens.encode((1764409047.25, "ord_1"))
    assert tokens.decode(token, ORDER_POSITION) == (1764409047.25, "ord_1")
    assert tokens.decode("", ORDER_POSITION) is None


def test_a_position_with_a_400_digit_number_is_refused_not_crashed() -> None:
    huge = "[1" + "0" * 400 + ', "x"]'
    refused(unsigned(huge))
    assert "unexpected position" in refused(signed(huge))


@pytest.mark.parametrize(
    "payload",
    ['[NaN, "x"]', '[Infinity, "x"]', '[-Infinity, "x"]', '[1e999, "x"]', '[true, "x"]'],
)
def test_non_finite_or_non_numeric_times_are_refused_even_when_signed(payload: str) -> None:
    refused(unsigned(payload))
    refused(signed(payload))


@pytest.mark.parametrize(
    "payload",
    ['["x", 1.0]', "[1.0]", '[1.0, "x", "y"]', '{"a": 1}', "[1.0, " + json.dumps("x" * 300) + "]"],
)
def test_positions_of_the_wrong_shape_are_refused_even_when_signed(payload: str) -> None:
    assert "unexpected position" in refused(signed(payload))


def test_tokens_of_another_key_or_tampered_or_overlong_are_refused() -> None:
    other = PageTokens(bytes(32)).encode((1.0, "ord_1"))
    assert "bad signature" in refused(other)
    token = PageTokens(KEY).encode((1.0, "ord_1"))
    raw = bytearray(base64.urlsafe_b64decode(token))
    raw[2] ^= 1
    assert "bad signature" in refused(base64.urlsafe_b64encode(bytes(raw)).decode())
    assert "too long" in refused("A" * (paging.MAX_TOKEN_CHARS + 1))
    assert "base64" in refused("!!not-a-token")
    assert "bad signature" in refused("AAAA")


async def test_instances_sharing_a_database_share_its_key_and_restarts_keep_it(
    tmp_path: Path,
) -> None:
    keys = []
    for _ in range(2):
        db = SqliteDatabase(tmp_path / "svc.sqlite3")
        await db.open({"paging": paging.MIGRATIONS})
        keys.append(await db.read(paging.load_key))
        await db.close()
    other = SqliteDatabase(tmp_path / "other.sqlite3")
    await other.open({"paging": paging.MIGRATIONS})
    other_key = await other.read(paging.load_key)
    await other.close()
    assert keys[0] == keys[1] and len(keys[0]) == paging.KEY_BYTES
    assert other_key != keys[0]
