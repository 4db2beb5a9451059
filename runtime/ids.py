"""Identifiers and clocks, in one place so tests and services agree on their shape."""

from __future__ import annotations

import time
import uuid

from google.protobuf.timestamp_pb2 import Timestamp


def new_id(prefix: str) -> str:
    """A readable, unique id such as `ord_5f0c2a9e4b7d4c1e9a0b`."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def new_message_id() -> str:
    return str(uuid.uuid4())


def now() -> float:
    return time.time()


def timestamp(epoch_s: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(epoch_s * 1e9))
    return ts
