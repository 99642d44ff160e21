"""The JSON Schema of an event says exactly what the ingress accepts.

Each pattern is checked both ways where it can be: every string it matches is taken by
pydantic and survives an Avro round trip (property tests over the patterns themselves), and
the values it refuses are the ones that cannot be represented.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from decimal import Decimal
from typing import Annotated, Any

import fastavro
import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import AwareDatetime, NaiveDatetime

from eventplatform.connectors.builtin.ingress.jsonschema import (
    DATE_PATTERN,
    DATETIME_PATTERN,
    FLOAT32_MAX,
    LOCAL_DATETIME_PATTERN,
    TIME_PATTERN,
    UUID_PATTERN,
    body_validator,
)
from eventplatform.connectors.sdk.payloads import parse_event
from eventplatform.schema import AvroDecimal, AvroEvent, Int32, Millis
from eventplatform.schema.markers import Fixed, Float32


class Moments(AvroEvent, namespace="tests.jsonschema"):
    """One value of each textual logical type."""

    day: dt.date
    at: Annotated[dt.time, Millis]
    ts: Annotated[AwareDatetime, Millis]
    local: NaiveDatetime


class Numbers(AvroEvent, namespace="tests.jsonschema"):
    """Numbers and the byte-like types."""

    i32: Annotated[int, Int32] = 0
    f32: Annotated[float, Float32] = 0.0
    f64: float = 0.0
    price: Annotated[Decimal, AvroDecimal(4, 2)] = Decimal(0)
    fraction: Annotated[Decimal, AvroDecimal(2, 2)] = Decimal(0)
    four: Annotated[bytes, Fixed(4, name="Four")] = b"0000"


CHECK_MOMENTS = body_validator(Moments)


def roundtrip(event: AvroEvent) -> AvroEvent:
    """``event`` written and read back as Avro."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, type(event).parsed_schema(), event.to_avro())
    buffer.seek(0)
    record = fastavro.schemaless_reader(buffer, type(event).parsed_schema(), None)
    return type(event).from_avro(record)


def matches(pattern: str, text: str) -> bool:
    """Whether ``text`` matches the anchored ECMA-262 ``pattern``, as a JSON Schema says."""
    return bool(jsonschema_rs.validator_for({"pattern": pattern}).is_valid(text))


@settings(max_examples=200, suppress_health_check=list(HealthCheck), database=None)
@given(
    day=st.from_regex(DATE_PATTERN, fullmatch=True),
    at=st.from_regex(TIME_PATTERN, fullmatch=True),
    ts=st.from_regex(DATETIME_PATTERN, fullmatch=True),
    local=st.from_regex(LOCAL_DATETIME_PATTERN, fullmatch=True),
)
def test_what_the_patterns_allow_is_accepted_and_reads_back(
    day: str, at: str, ts: str, local: str
) -> None:
    body = json.dumps({"day": day, "at": at, "ts": ts, "local": local})
    assert CHECK_MOMENTS(json.loads(body)) == []
    event = parse_event(Moments, body)
    back = roundtrip(event)
    assert isinstance(back, Moments)
    assert back.day == event.day
    assert back.ts == event.ts.replace(microsecond=event.ts.microsecond // 1000 * 1000)


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        (DATE_PATTERN, "2000-02-29", True),  # divisible by 400
        (DATE_PATTERN, "1900-02-29", False),  # a century not divisible by 400
        (DATE_PATTERN, "2024-02-29", True),
        (DATE_PATTERN, "2023-02-29", False),
        (DATE_PATTERN, "2023-04-31", False),
        (DATE_PATTERN, "0000-01-01", False),  # no year 0 in Python
        (DATE_PATTERN, "2023-01-01\n", False),
        (TIME_PATTERN, "23:59:59.999999", True),
        (TIME_PATTERN, "23:59:60", False),  # a leap second: Python has none
        (TIME_PATTERN, "10:00:00Z", False),  # a time of day carries no offset
        (TIME_PATTERN, "10:00", False),
        (DATETIME_PATTERN, "2026-05-01T12:00:00Z", True),
        (DATETIME_PATTERN, "2026-05-01T12:00:00.123456+23:59", True),
        (DATETIME_PATTERN, "2026-05-01T12:00:00.1234567Z", False),  # nanoseconds
        (DATETIME_PATTERN, "2026-05-01t12:00:00z", False),
        (DATETIME_PATTERN, "2026-05-01T12:00:00", False),  # no offset
        (DATETIME_PATTERN, "2026-05-01 12:00:00Z", False),
        # Before year 1 or after 9999 in UTC: no reader can build it.
        (DATETIME_PATTERN, "0001-01-01T00:47:14.930+06:17", False),
        (DATETIME_PATTERN, "0001-01-01T00:00:00-06:17", True),
        (DATETIME_PATTERN, "0001-01-01T00:00:00+00:00", True),
        (DATETIME_PATTERN, "9999-12-31T23:00:00-05:00", False),
        (DATETIME_PATTERN, "9999-12-31T23:00:00+05:00", True),
        (LOCAL_DATETIME_PATTERN, "0001-01-01T00:00:00", True),
        (LOCAL_DATETIME_PATTERN, "2026-05-01T12:00:00Z", False),
        (UUID_PATTERN, "7d0c4c1e-2b8a-4f6e-9d3a-5B1C2E4F6A80", True),
        (UUID_PATTERN, "7d0c4c1e2b8a4f6e9d3a5b1c2e4f6a80", False),
    ],
)
def test_the_patterns_draw_the_line_where_python_does(
    pattern: str, text: str, expected: bool
) -> None:
    assert matches(pattern, text) is expected
    assert (re.fullmatch(pattern[1:-1], text) is not None) is expected


def violations(body: dict[str, Any]) -> dict[str, str]:
    return dict(body_validator(Numbers)(body))


def test_the_body_check_names_each_violation_by_path() -> None:
    assert violations({}) == {}
    assert violations({"i32": -2546.0, "f64": 5e-324, "f32": -FLOAT32_MAX}) == {}
    found = violations(
        {"i32": 2.5, "f32": 3.5e38, "price": 1.5, "fraction": "1.00", "four": "ééé", "x": 1}
    )
    assert set(found) == {"$", "$.i32", "$.f32", "$.price", "$.fraction", "$.four"}
    assert "not of type" in found["$.price"]  # decimals travel as strings, exactly
    assert violations({"price": "12.34", "fraction": "-0.5", "four": "\x00abc"}) == {}
    assert set(violations({"price": "123.4"})) == {"$.price"}  # three digits before the point


def test_a_long_value_is_not_quoted_in_full() -> None:
    (reason,) = violations({"four": "x" * 10_000}).values()
    assert len(reason) <= 200


def test_a_pattern_refusal_says_what_the_value_must_be_not_the_pattern() -> None:
    from eventplatform.connectors.builtin.ingress.jsonschema import body_validator
    from eventplatform.demo.events import OrderPlaced

    check = body_validator(OrderPlaced)
    body = {
        "order_id": "x",
        "customer_id": "c",
        "items": [{"sku": "a", "quantity": 1, "unit_price": "1.234567"}],
        "total": "9",
        "currency": "EUR",
        "placed_at": "0001-01-01T00:47:14.930+06:17",
    }
    reasons = dict(check(body))
    assert set(reasons) == {"$.order_id", "$.items[0].unit_price", "$.placed_at"}
    assert reasons["$.order_id"] == '"x" is not a UUID (8-4-4-4-12 hexadecimal digits)'
    assert "at most 10 digits, 2 after the point" in reasons["$.items[0].unit_price"]
    assert "in UTC years 0001-9999" in reasons["$.placed_at"]
    assert all("^" not in reason for reason in reasons.values())
