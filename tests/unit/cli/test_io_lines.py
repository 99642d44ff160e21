"""``produce`` input checking and ``consume`` output, without a broker."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from aiokafka.structs import ConsumerRecord

from eventplatform.cli.io import json_line, read_events, record_json
from eventplatform.cloudevents import EventMetadata, record_event_id
from eventplatform.schema import AvroEvent, load_catalogue, load_event_class
from tests.unit.cli.conftest import SAMPLE_CATALOGUE, Invoke


def order_type() -> type[AvroEvent]:
    catalogue = load_catalogue(SAMPLE_CATALOGUE)
    return load_event_class(
        catalogue["com.example.orders.OrderPlaced"].resolved, catalogue=catalogue
    )


def order(**changes: Any) -> str:
    event = {
        "order_id": "00000000-0000-4000-8000-000000000001",
        "customer_id": "c-1",
        "items": [{"sku": "A", "quantity": 2, "unit_price": "2.50"}],
        "total": "5.00",
        "currency": "EUR",
        "placed_at": "2026-05-01T12:00:00Z",
    }
    return json.dumps(event | changes)


def test_valid_lines_become_events_keyed_by_a_field() -> None:
    lines = [order(), "", order(customer_id="c-2")]

    parsed, problems = read_events(lines, order_type(), key=None, key_field="customer_id")

    assert problems == []
    assert [(p.number, p.key) for p in parsed] == [(1, "c-1"), (3, "c-2")]
    assert parsed[0].event.to_avro()["total"] == Decimal("5.00")


def test_each_bad_field_is_named_with_its_line_and_path() -> None:
    lines = [
        order(),
        order(items=[{"sku": "A", "quantity": "two", "unit_price": "2.505"}]),
        order(currency="JPY", surprise=1),
        "[1, 2]",
        '{"order_id": ',
    ]

    parsed, problems = read_events(lines, order_type(), key="k", key_field=None)

    assert [p.number for p in parsed] == [1]
    assert problems[:2] == [
        "line 2: field items[0].quantity: Input should be a valid integer, unable to parse "
        "string as an integer",
        "line 2: field items[0].unit_price: Decimal input should have no more than 2 decimal "
        "places",
    ]
    assert "line 3: field currency: Input should be 'EUR', 'USD' or 'GBP'" in problems
    assert "line 3: field surprise: Extra inputs are not permitted" in problems
    assert any(p.startswith("line 4: ") for p in problems)
    assert problems[-1].startswith("line 5: not a JSON object: ")


def test_a_bad_line_stops_produce_before_any_connection(cli: Invoke, catalogue: Path) -> None:
    # No cluster or registry is configured: reaching them would fail differently.
    result = cli(
        "produce", "orders", "--type", "com.example.orders.OrderPlaced",
        input="\n".join([order(), order(total="lots")]),
    )  # fmt: skip

    assert result.exit_code == 1
    assert "line 2: field total: Input should be a valid decimal" in result.stderr
    assert "1 problem(s) in the input; nothing was written" in result.stderr


def test_produce_refuses_a_type_that_is_not_a_record_of_the_catalogue(
    cli: Invoke, catalogue: Path
) -> None:
    result = cli("produce", "orders", "--type", "com.example.orders.Currency", input=order())

    assert result.exit_code == 2
    assert "not a record type" in result.stderr


def test_produce_refuses_an_unknown_key_field(cli: Invoke, catalogue: Path) -> None:
    result = cli(
        "produce", "orders", "--type", "com.example.orders.OrderPlaced",
        "--key-field", "customer", input=order(),
    )  # fmt: skip

    assert result.exit_code == 2
    assert "has no field 'customer'" in result.stderr


def record(value: Any, headers: list[tuple[str, bytes]]) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="orders",
        partition=1,
        offset=7,
        timestamp=1_700_000_000_000,
        timestamp_type=0,
        key=b"c-1",
        value=value,
        checksum=None,
        serialized_key_size=3,
        serialized_value_size=0,
        headers=headers,
    )


def test_a_record_prints_position_key_metadata_and_value() -> None:
    meta = EventMetadata.new(
        source="/shop", type="com.example.orders.OrderPlaced", id="e-1", subject="order-1",
        time=datetime(2026, 5, 1, 12, tzinfo=UTC),
    )  # fmt: skip
    headers = meta.to_headers([("x-tenant", b"acme")])
    value = {"order_id": UUID(int=1), "total": Decimal("5.00"), "raw": b"\x00\xff"}

    printed = record_json(record(b"...", headers), 4, value)

    assert printed == {
        "topic": "orders",
        "partition": 1,
        "offset": 7,
        "timestamp": 1_700_000_000_000,
        "key": "c-1",
        "meta": {
            "specversion": "1.0",
            "id": "e-1",
            "source": "/shop",
            "type": "com.example.orders.OrderPlaced",
            "time": "2026-05-01T12:00:00.000000Z",
            "subject": "order-1",
            "content_type": "application/avro",
            "idempotency_key": "e-1",
        },
        "schema_id": 4,
        "value": value,
        "headers": {"x-tenant": "acme"},
    }


def test_a_record_without_cloudevents_headers_shows_derived_metadata() -> None:
    headers = [("traceparent", b"00-abc"), ("content-type", b"avro/binary")]
    printed = record_json(
        record(b"...", headers), 4, {"a": 1}, type_name="com.example.orders.OrderPlaced"
    )

    derived_id = record_event_id("orders", 1, 7, 1_700_000_000_000)
    assert printed["meta"] == {
        "specversion": "1.0",
        "id": derived_id,
        "source": "/topics/orders",
        "type": "com.example.orders.OrderPlaced",
        "time": "2023-11-14T22:13:20.000000Z",
        "content_type": "application/avro",
        "idempotency_key": derived_id,
        "traceparent": "00-abc",
        "derived": True,
    }
    assert printed["headers"] == {"content-type": "avro/binary"}  # not a CloudEvents one


def test_a_configured_source_and_malformed_cloudevents_headers() -> None:
    printed = record_json(record(b"...", []), 4, {}, type_name="t", source="/legacy")
    assert printed["meta"]["source"] == "/legacy"
    # Some ce_* headers but not all: shown raw, not guessed.
    malformed = record_json(record(b"...", [("ce_id", b"1")]), 4, {}, type_name="t")
    assert malformed["meta"] is None
    assert malformed["headers"] == {"ce_id": "1"}


def test_avro_values_print_as_the_json_produce_reads() -> None:
    value = {
        "id": UUID(int=1),
        "total": Decimal("5.00"),
        "at": datetime(2026, 5, 1, 12, tzinfo=UTC),
        "day": date(2026, 5, 1),
        "hash": b"\x00\xff",
    }

    assert json.loads(json_line(value)) == {
        "id": "00000000-0000-0000-0000-000000000001",
        "total": "5.00",
        "at": "2026-05-01T12:00:00+00:00",
        "day": "2026-05-01",
        "hash": "\u0000\u00ff",
    }
