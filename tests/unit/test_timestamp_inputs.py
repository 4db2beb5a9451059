"""Timestamp inputs (validation.check_timestamp): exactly the instants protobuf can convert
pass, everything else is a field violation naming the bad part, never a ValueError later."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from runtime.errors import InvalidArgumentError
from runtime.validation import (
    MAX_TIMESTAMP_SECONDS,
    MIN_TIMESTAMP_SECONDS,
    Violations,
    check_timestamp,
)


@pytest.mark.parametrize(
    "value",
    [
        Timestamp(seconds=MIN_TIMESTAMP_SECONDS),
        Timestamp(seconds=MAX_TIMESTAMP_SECONDS, nanos=999_999_999),
        Timestamp(),
    ],
)
def test_every_valid_timestamp_passes_and_converts(value: Timestamp) -> None:
    v = Violations()
    assert check_timestamp(v, value, "as_of_time")
    v.raise_if_any()
    value.ToNanoseconds()
    value.ToDatetime()


@pytest.mark.parametrize(
    ("value", "fields"),
    [
        (Timestamp(seconds=MAX_TIMESTAMP_SECONDS + 1), {"as_of_time.seconds"}),
        (Timestamp(seconds=MIN_TIMESTAMP_SECONDS - 1), {"as_of_time.seconds"}),
        (Timestamp(seconds=2**62), {"as_of_time.seconds"}),
        (Timestamp(nanos=-1), {"as_of_time.nanos"}),
        (
            Timestamp(seconds=-(2**62), nanos=2_000_000_000),
            {"as_of_time.seconds", "as_of_time.nanos"},
        ),
    ],
)
def test_timestamps_protobuf_cannot_convert_are_violations(
    value: Timestamp, fields: set[str]
) -> None:
    with pytest.raises(ValueError):
        value.ToDatetime()  # what a handler converting it unchecked would hit
    v = Violations()
    assert not check_timestamp(v, value, "as_of_time")
    with pytest.raises(InvalidArgumentError) as err:
        v.raise_if_any()
    assert {violation.field for violation in err.value.violations} == fields
