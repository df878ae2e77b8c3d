"""RFC 3339 in and out: what ``updated_since`` accepts and how ``updated_at`` is written."""

from __future__ import annotations

import datetime as dt

import pytest

from sync_pipeline.sandbox.svenn.timestamps import format_us, parse_rfc3339

NOON = 1_795_780_800_000_000  # 2026-11-27T12:00:00Z in µs
YEAR_ONE = (dt.date(1, 1, 1).toordinal() - dt.date(1970, 1, 1).toordinal()) * 86_400_000_000


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("2026-11-27T12:00:00Z", NOON),
        ("2026-11-27t12:00:00z", NOON),
        ("2026-11-27T13:00:00+01:00", NOON),
        ("2026-11-27T06:30:00-05:30", NOON),
        ("2026-11-27T12:00:00.5Z", NOON + 500_000),
        ("2026-11-27T12:00:00.000001Z", NOON + 1),
        ("2026-11-27T12:00:00.0000001Z", NOON + 1),  # below 1 µs rounds up: >= stays exact
        ("2026-11-27T12:00:00.0000000Z", NOON),
        ("2026-11-27T11:59:60Z", NOON),  # a leap second is the next minute's first
        ("0001-01-01T00:00:00+23:59", YEAR_ONE - (23 * 3600 + 59 * 60) * 1_000_000),  # no overflow
    ],
)
def test_rfc3339_timestamps_with_any_offset_are_accepted(text, micros):
    assert parse_rfc3339(text) == micros


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-27T12:00:00",  # no offset
        "2026-11-27 12:00:00Z",
        "2026-11-27",
        "2026-02-30T12:00:00Z",
        "2026-11-27T24:00:00Z",
        "2026-11-27T12:00:00+24:00",
        "27.11.2026 12:00",
        "",
    ],
)
def test_malformed_timestamps_are_refused(text):
    assert parse_rfc3339(text) is None


def test_written_timestamps_are_utc_with_microseconds_and_round_trip():
    assert format_us(NOON + 42) == "2026-11-27T12:00:00.000042Z"
    assert parse_rfc3339(format_us(NOON + 42)) == NOON + 42
