"""Events survive to_avro -> fastavro binary -> from_avro unchanged, for every Avro type."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

import fastavro
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventplatform.schema import AvroEvent, load_event_class, normalized_json
from eventplatform.schema.tree import validate_schema
from tests.unit.schema import strategies
from tests.unit.schema.models import Color, Currency, Everything, Money, Point


def roundtrip(event: AvroEvent) -> AvroEvent:
    cls = type(event)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, cls.parsed_schema(), event.to_avro())
    buffer.seek(0)
    record = fastavro.schemaless_reader(buffer, cls.parsed_schema(), None)
    return cls.from_avro(record)


def everything(**changes: Any) -> Everything:
    values: dict[str, Any] = {
        "flag": True,
        "small": -(2**31),
        "big": 2**63 - 1,
        "ratio": 0.5,
        "precise": 1e300,
        "text": "grüße ✓",
        "blob": b"\x00\xff",
        "digest": bytes(range(16)),
        "color": Color.GREEN,
        "currency": Currency.USD,
        "point": Point(x=1, y=-2),
        "money": Money(amount=Decimal("-12.345"), currency=Currency.EUR),
        "tags": ["a", ""],
        "matrix": [[1, 2], [], [3]],
        "counts": {"a": 1, "b": -(2**63)},
        "by_color": {"x": [Color.RED, Color.GREEN], "y": []},
        "choice": Money(amount=Decimal("1.000"), currency=Currency.USD),
        "id": UUID("12345678-1234-5678-1234-567812345678"),
        "day": date(1969, 12, 31),
        "at_millis": time(23, 59, 59, 999000),
        "at_micros": time(0, 0, 0, 1),
        "ts_millis": datetime(2024, 2, 29, 12, 30, 15, 123000, tzinfo=UTC),
        "ts_micros": datetime(1960, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        "local_millis": datetime(2024, 2, 29, 12, 30, 15, 123000),
        "local_micros": datetime(2999, 1, 1, 0, 0, 0, 999999),
        "price": Decimal("99999999.99"),
        "fee": Decimal("-0.01"),
        "renamed": "class is a keyword",
    }
    values.update(changes)
    return Everything(**values)


def test_every_type_round_trips() -> None:
    event = everything()
    assert roundtrip(event) == event


def test_optional_fields_and_defaults_round_trip() -> None:
    event = everything(note="n", maybe_color=Color.RED, scale=None, numbers=[1, 2])
    assert roundtrip(event) == event


def test_multi_type_union_keeps_the_branch_of_each_value() -> None:
    for choice in (7, "seven", Point(x=7, y=7), Money(amount=Decimal("7"), currency="EUR")):
        event = everything(choice=choice)
        back = roundtrip(event)
        assert back.choice == event.choice
        assert type(back.choice) is type(event.choice)


def test_str_enum_is_passed_to_fastavro_as_is_and_plain_enum_as_its_value() -> None:
    record = everything().to_avro()
    assert record["currency"] is Currency.USD
    assert record["color"] == "GREEN"
    assert record["by_color"] == {"x": ["RED", "GREEN"], "y": []}
    assert record["class"] == "class is a keyword"


def test_union_of_records_uses_fastavro_tuple_notation() -> None:
    record = everything(choice=Point(x=1, y=2)).to_avro()
    assert record["choice"] == ("com.example.test.Point", {"x": 1, "y": 2})


def test_to_avro_of_a_class_without_fixups_is_model_dump_by_alias() -> None:
    money = Money(amount=Decimal("1.500"), currency=Currency.EUR)
    assert money.to_avro() == money.model_dump(by_alias=True)
    assert Money.__avro_encode__ is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_every_type_round_trips(data: st.DataObject) -> None:
    schema = Everything.avro_schema()
    lookup = strategies.definitions(schema)
    record = data.draw(strategies.values(schema, lookup))
    record["choice"] = data.draw(st.one_of(st.integers(-5, 5), st.text(max_size=3)))
    event = Everything.from_avro(record)
    assert roundtrip(event) == event


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), schema=strategies.records())
def test_property_generated_schemas_bind_and_round_trip(
    data: st.DataObject, schema: dict[str, Any]
) -> None:
    expected = normalized_json(schema)
    cls = load_event_class(schema)
    assert normalized_json(cls.avro_schema()) == expected
    tree = validate_schema(schema)
    record = data.draw(strategies.values(tree.schema, tree.definitions))
    event = cls.from_avro(record)
    assert roundtrip(event) == event
