"""What the webhook egress sends and records: bodies, Avro values as JSON, Retry-After, schedule."""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from email.utils import format_datetime
from uuid import UUID

import pytest

from eventplatform.cloudevents import EventMetadata, format_time
from eventplatform.connectors.builtin.egress import deliveries
from eventplatform.connectors.builtin.egress.deliveries import (
    SVIX_SCHEDULE,
    DeliveryAttempt,
    DeliveryOutcome,
    EndpointRecords,
    RetrySchedule,
    json_value,
    parse_retry_after,
    webhook_body,
)


def avro_values() -> dict[str, object]:
    return {
        "id": UUID("7d0c4c1e-2b8a-4f6e-9d3a-5b1c2e4f6a80"),
        "total": Decimal("9.50"),
        "at": datetime(2026, 5, 1, 12, 0, tzinfo=UTC),
        "at_micros": datetime(2026, 5, 1, 12, 0, 0, 123000, tzinfo=UTC),
        "offset": datetime(2026, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
        "day": date(2026, 5, 1),
        "clock": time(12, 30),
        "raw": b"\x00\xff",
        "items": [{"n": 1}, {"n": None}],
        "ratio": math.nan,
        "flag": True,
    }


def test_avro_values_become_the_json_forms_pydantic_writes() -> None:
    value = avro_values()
    assert json_value(value) == {
        "id": "7d0c4c1e-2b8a-4f6e-9d3a-5b1c2e4f6a80",
        "total": "9.50",
        "at": "2026-05-01T12:00:00Z",
        "at_micros": "2026-05-01T12:00:00.123000Z",
        "offset": "2026-05-01T14:00:00+02:00",
        "day": "2026-05-01",
        "clock": "12:30:00",
        "raw": "AP8=",
        "items": [{"n": 1}, {"n": None}],
        "ratio": None,
        "flag": True,
    }


def test_the_body_has_the_standard_webhooks_shape_with_cloudevents_attributes() -> None:
    meta = EventMetadata.new(
        source="/connectors/orders-in",
        type="com.example.orders.OrderPlaced",
        id="e-1",
        time=datetime(2026, 5, 1, 12, 0, tzinfo=UTC),
        subject="order-7",
    )
    body = json.loads(webhook_body(meta, {"total": Decimal("1.00")}))
    assert body == {
        "type": "com.example.orders.OrderPlaced",
        "timestamp": "2026-05-01T12:00:00.000000Z",
        "id": "e-1",
        "source": "/connectors/orders-in",
        "subject": "order-7",
        "data": {"total": "1.00"},
    }
    without = EventMetadata.new(source="/s", type="t", id="e-2")
    assert "subject" not in json.loads(webhook_body(without, {}))


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("", None), ("120", 120.0), (" 7 ", 7.0), ("soon", None), ("-5", None)],
)
def test_retry_after_in_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(90)
    earlier = format_datetime(now - timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(earlier, now=now.timestamp()) == 0.0


def test_the_default_schedule_is_svix_s() -> None:
    schedule = RetrySchedule()
    assert schedule.attempts == 8
    waits = [schedule.next_delay(attempt) for attempt in range(1, 9)]
    assert waits == [5, 300, 1800, 7200, 18000, 36000, 36000, None]
    assert tuple(schedule.delays) == SVIX_SCHEDULE


def test_retry_after_replaces_the_scheduled_wait_within_a_cap() -> None:
    schedule = RetrySchedule((0.5, 0.5), max_retry_after=60)
    assert schedule.next_delay(1, retry_after=3) == 3
    assert schedule.next_delay(1, retry_after=0) == 0
    assert schedule.next_delay(2, retry_after=10_000) == 60
    assert schedule.next_delay(3, retry_after=1) is None  # exhausted all the same


def test_a_delivery_attempt_round_trips_as_json() -> None:
    attempt = DeliveryAttempt(
        connector="orders-out",
        endpoint="billing",
        url="https://billing.example.com/hooks",
        event_id="e-1",
        webhook_id="k-1",
        type="com.example.orders.OrderPlaced",
        topic="orders",
        partition=2,
        offset=41,
        attempt=3,
        outcome=DeliveryOutcome.RETRYING,
        status_code=503,
        latency_ms=12.34567,
        error="HTTP 503",
        next_attempt_at="2026-05-01T12:05:00.000000Z",
    )
    raw = json.loads(attempt.to_json())
    assert raw["outcome"] == "retrying"
    assert raw["latency_ms"] == 12.346
    assert raw["at"].endswith("Z")
    back = DeliveryAttempt.from_json(attempt.to_json())
    assert (back.event_id, back.outcome, back.status_code) == ("e-1", DeliveryOutcome.RETRYING, 503)
    with pytest.raises(ValueError, match="not a delivery attempt"):
        DeliveryAttempt.from_json(b'{"outcome": "delivered"}')


def test_a_delivery_attempt_record_is_the_json_of_its_fields() -> None:
    attempt = DeliveryAttempt(
        connector='out "quoted"',
        endpoint="bäckerei\\ü",
        url="http://x/\u2028",
        event_id="e\n1",
        webhook_id="k\t1",
        type="t",
        topic="orders",
        partition=0,
        offset=7,
        attempt=1,
        outcome=DeliveryOutcome.DELIVERED,
        at="2026-05-01T12:00:00.000000Z",
    )
    expected = {field.name: getattr(attempt, field.name) for field in dataclasses.fields(attempt)}
    expected["outcome"] = "delivered"
    assert json.loads(attempt.to_json()) == expected
    assert DeliveryAttempt.from_json(attempt.to_json()) == attempt


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"status_code": 204, "latency_ms": 3.0},
        {"status_code": 204, "latency_ms": 0.0004},
        {
            "outcome": DeliveryOutcome.RETRYING,
            "status_code": 503,
            "latency_ms": 12.34567,
            "error": "HTTP 503",
            "next_attempt_at": "2026-05-01T12:05:00.000000Z",
        },
        {"outcome": DeliveryOutcome.REFUSED, "latency_ms": 1e-7, "error": 'Unsafe: "10.0.0.1"'},
        {"outcome": DeliveryOutcome.SKIPPED, "attempt": 4},
    ],
)
def test_an_endpoints_rendered_record_is_the_attempts_json(changes: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "connector": 'out "quoted"',
        "endpoint": "bäckerei\\ü",
        "url": "http://x/\u2028",
        "event_id": "e\n1",
        "webhook_id": "k\t1",
        "type": "t",
        "topic": "orders",
        "partition": 2,
        "offset": 7,
        "attempt": 1,
        "outcome": DeliveryOutcome.DELIVERED,
        "at": "2026-05-01T12:00:00.000000Z",
    } | changes
    attempt = DeliveryAttempt(**fields)  # type: ignore[arg-type]
    records = EndpointRecords(attempt.connector, attempt.endpoint, attempt.url)
    event = EndpointRecords.event_fields(
        attempt.event_id,
        attempt.webhook_id,
        attempt.type,
        attempt.topic,
        attempt.partition,
        attempt.offset,
    )
    rendered = records.render(
        event,
        attempt.attempt,
        attempt.outcome.value,
        attempt.status_code,
        attempt.latency_ms,
        attempt.error,
        attempt.next_attempt_at,
        attempt.at,
    )
    assert records.key == attempt.endpoint.encode()
    assert rendered == attempt.to_json()
    if attempt.outcome is DeliveryOutcome.DELIVERED and attempt.status_code is not None:
        assert attempt.latency_ms is not None
        # The fast path of a delivered attempt writes the same bytes.
        fast = records.delivered(
            event, attempt.attempt, attempt.status_code, attempt.latency_ms, attempt.at
        )
        assert fast == attempt.to_json()


def test_the_body_writes_every_value_as_json_value_does() -> None:
    meta = EventMetadata.new(source="/s", type="t", id="e-3", time=datetime(2026, 5, 1, tzinfo=UTC))
    finite = avro_values()
    finite["ratio"] = 0.5
    for value in (finite, avro_values()):  # the second has a NaN: the json_value path
        body = json.loads(webhook_body(meta, value))
        assert body["data"] == json_value(value)


@pytest.mark.parametrize(
    "nanoseconds",
    [0, 999_999, 1_000_000, 1_777_636_800_123_456_789, 1_777_636_800_999_000_000],
)
def test_an_attempt_time_is_format_time_to_the_millisecond(
    nanoseconds: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deliveries.time, "time_ns", lambda: nanoseconds)
    millis = nanoseconds // 1_000_000
    expected = format_time(
        datetime.fromtimestamp(millis // 1000, UTC) + timedelta(milliseconds=millis % 1000)
    )
    assert deliveries.attempt_time() == expected
    assert deliveries.attempt_time() == expected  # the second of the same second, cached
