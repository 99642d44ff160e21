"""``ce_time`` is RFC 3339 §5.6, to the letter: all of it accepted, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventplatform.cloudevents import (
    _RFC3339,
    EventMetadata,
    InvalidEventHeaders,
    _from_fields,
    format_time,
    parse_time,
)

BASE = [("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_type", b"t"), ("ce_source", b"/s")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        # §5.6 NOTE: "T" and "Z" may alternatively be lower case.
        ("2026-01-02t03:04:05z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05.5Z", datetime(2026, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)),
        # Any number of fractional digits; beyond microseconds they are truncated.
        ("2026-01-02T03:04:05.123456789Z", datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        (
            "2026-01-02T03:04:05.25+05:30",
            datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        ),
        (
            "2026-01-02T03:04:05-08:00",
            datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-8))),
        ),
        # §4.3: -00:00 is UTC with the local offset unknown.
        ("2026-01-02T03:04:05-00:00", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        # §5.7: a leap second, read as the last representable instant before it.
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ],
)
def test_rfc3339_date_times_are_accepted(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()
    meta = EventMetadata.from_headers([*BASE, ("ce_time", text.encode())])
    assert meta.time == expected
    assert meta.time.tzinfo is not None


def test_our_own_format_round_trips() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    assert parse_time(format_time(when)) == when


@pytest.mark.parametrize(
    "text",
    ["2026-01-02T03:04:05", "2026-01-02t03:04:05.123", "2026-01-02 03:04:05", "2026-01-02T03:04"],
)
def test_a_time_without_offset_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match="has no UTC offset"):
        parse_time(text)
    with pytest.raises(InvalidEventHeaders) as info:
        EventMetadata.from_headers(
            [*BASE, ("ce_time", text.encode())], topic="orders", partition=1, offset=9
        )
    message = str(info.value)
    assert message.startswith("topic 'orders', partition 1, offset 9: header 'ce_time'")
    assert "has no UTC offset" in message


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "2026-01-02",  # a date alone is not a date-time
        "20260102T030405Z",  # ISO 8601 basic format: not RFC 3339
        "2026-01-02T03:04:05+0530",  # offset without its colon
        "2026-01-02T03:04:05+05",
        "2026-W01-1T03:04:05Z",
        "2026-01-02T03:04:05.Z",  # a point without digits
        "2026-01-02T03:04:05Z ",
        "\uff12\uff10\uff12\uff16-01-02T03:04:05Z",  # fullwidth (non-ASCII) digits
    ],
)
def test_other_syntax_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not an RFC 3339 date-time"):
        parse_time(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2026-02-30T03:04:05Z", "day is out of range"),
        ("2026-01-02T24:00:00Z", "hour must be in"),
        ("2026-01-02T03:04:05+24:00", "offset out of range"),
        ("2026-01-02T03:04:05+05:60", "offset out of range"),
    ],
)
def test_out_of_range_fields_are_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_time(text)


@settings(max_examples=300, deadline=None)
@given(
    when=st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
    offset_minutes=st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
    digits=st.integers(min_value=0, max_value=6),
    lower=st.booleans(),
)
def test_the_fast_path_agrees_with_the_field_by_field_one(
    when: datetime, offset_minutes: int, digits: int, lower: bool
) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    local = when.astimezone(zone)
    fraction = f"{local.microsecond:06d}"[:digits]
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    suffix = ("z" if lower else "Z") if offset_minutes == 0 else f"{sign}{hours:02d}:{minutes:02d}"
    text = local.strftime("%Y-%m-%dT%H:%M:%S").replace("T", "t" if lower else "T")
    text = text.zfill(19) + (f".{fraction}" if digits else "") + suffix
    match = _RFC3339.fullmatch(text)
    assert match is not None
    assert parse_time(text) == _from_fields(text, match)
    assert parse_time(text).utcoffset() == _from_fields(text, match).utcoffset()
