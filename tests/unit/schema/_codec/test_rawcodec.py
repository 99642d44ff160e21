"""The raw codec writes fastavro's exact bytes and reads back equal events."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, time, timedelta
from decimal import Context, Decimal
from typing import Annotated, Any
from uuid import UUID

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import AwareDatetime, BaseModel, NaiveDatetime, field_validator

from eventplatform.errors import SerializationError
from eventplatform.schema import AvroDecimal, AvroEvent, Fixed, Millis, load_event_class
from eventplatform.schema._codec import avroio
from eventplatform.schema._codec.avroio import record_reader, record_writer
from eventplatform.schema._codec.rawcodec import READ_OPTIONS, RawDecodeFallback, raw_codec
from eventplatform.schema.tree import validate_schema
from tests.unit.schema import strategies
from tests.unit.schema.models import Color, Currency, Everything, Money, Point
from tests.unit.schema.test_roundtrip import everything


class Leaf(BaseModel):
    """A plain model nested in arrays of maps."""

    amount: Annotated[Decimal, AvroDecimal(6, 3)]
    at: Annotated[AwareDatetime, Millis] | None = None


class Edges(AvroEvent, namespace="com.example.raw"):
    """Every logical type, nested containers and optional values."""

    id: UUID
    big: Annotated[Decimal, AvroDecimal(38, 10)]
    fee: Annotated[Decimal, AvroDecimal(9, 2), Fixed(5, name="Fee")]
    day: date
    at_millis: Annotated[time, Millis]
    at_micros: time
    ts_millis: Annotated[AwareDatetime, Millis]
    ts_micros: AwareDatetime
    local_millis: Annotated[NaiveDatetime, Millis]
    local_micros: NaiveDatetime
    currency: Currency
    grid: list[dict[str, list[Leaf]]]
    maybe: Annotated[Decimal, AvroDecimal(4, 1)] | None = None


class Checked(AvroEvent, namespace="com.example.raw"):
    """A validator makes construction unsafe: decoding validates."""

    name: str

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


def full_bytes(event: AvroEvent) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, type(event).parsed_schema(), event.to_avro())
    return buffer.getvalue()


def raw_bytes(event: AvroEvent) -> bytes:
    codec = raw_codec(type(event))
    assert codec is not None
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, codec.parsed, codec.encode(event))
    # The direct writer (fastavro's write_data after a header) writes the same bytes.
    assert record_writer(codec.parsed)(b"\x00head", codec.encode(event)) == (
        b"\x00head" + buffer.getvalue()
    )
    return buffer.getvalue()


def raw_read(cls: type[AvroEvent], data: bytes) -> Any:
    codec = raw_codec(cls)
    assert codec is not None
    raw = fastavro.schemaless_reader(io.BytesIO(data), codec.parsed, None, **READ_OPTIONS)
    # The codec's own reader (fastavro's read_record called directly) reads the same.
    buffer = io.BytesIO(data)
    assert codec.reader(buffer) == raw
    assert buffer.tell() == len(data)
    return codec.decode(raw)


def edges(**changes: Any) -> Edges:
    values: dict[str, Any] = {
        "id": UUID("00000000-0000-0000-0000-000000000001"),
        "big": Decimal("-9999999999999999999999999999.9999999999"),
        "fee": Decimal("-0.01"),
        "day": date(1969, 12, 31),
        "at_millis": time(23, 59, 59, 999999),
        "at_micros": time(0, 0, 0, 1),
        "ts_millis": datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        "ts_micros": datetime(1900, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        "local_millis": datetime(1960, 6, 1, 0, 0, 0, 500),
        "local_micros": datetime(2999, 1, 1, 0, 0, 0, 999999),
        "currency": Currency.USD,
        "grid": [{"a": [Leaf(amount=Decimal("0"), at=datetime(1, 1, 1, tzinfo=UTC))]}, {}],
        "maybe": Decimal("-128.0"),
    }
    values.update(changes)
    return Edges(**values)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"big": Decimal("0"), "fee": Decimal("9999999.99"), "maybe": None},
        {"big": Decimal("-0.0000000001"), "fee": Decimal("-9999999.99")},
        {"big": Decimal("1E+5"), "maybe": Decimal("12.8"), "grid": []},
    ],
)
def test_edge_values_write_the_same_bytes_and_read_back_equal(changes: dict[str, Any]) -> None:
    event = edges(**changes)
    data = raw_bytes(event)
    assert data == full_bytes(event)
    back = raw_read(Edges, data)
    assert back == Edges.from_avro(
        fastavro.schemaless_reader(io.BytesIO(data), Edges.parsed_schema(), None)
    )
    assert type(back.grid[0]["a"][0]) is Leaf if back.grid else True


def test_decoded_event_is_constructed_like_a_validated_one() -> None:
    codec = raw_codec(Edges)
    assert codec is not None
    assert codec.constructs
    back = raw_read(Edges, raw_bytes(edges()))
    assert back.model_fields_set == set(Edges.model_fields)
    assert back.currency is Currency.USD
    assert back.model_dump() == edges().model_dump() | {
        "at_millis": time(23, 59, 59, 999000),
        "ts_millis": datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        "local_millis": datetime(1960, 6, 1),
    }


def test_class_with_a_validator_is_decoded_through_validation() -> None:
    codec = raw_codec(Checked)
    assert codec is not None
    assert not codec.constructs
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, codec.parsed, {"name": "  x "})
    assert raw_read(Checked, buffer.getvalue()) == Checked(name="x")


@pytest.mark.parametrize(
    "choice", [7, "seven", Point(x=7, y=-7), Money(amount=Decimal("-7.5"), currency="EUR")]
)
def test_union_of_several_records_and_primitives_keeps_the_branch(choice: Any) -> None:
    event = everything(choice=choice, maybe_color=Color.RED, note="n")
    data = raw_bytes(event)
    assert data == full_bytes(event)
    back = raw_read(Everything, data)
    assert back == event
    assert type(back.choice) is type(choice)


def test_decimal_beyond_precision_asks_for_the_validating_path() -> None:
    codec = raw_codec(Edges)
    assert codec is not None
    record = fastavro.schemaless_reader(
        io.BytesIO(raw_bytes(edges())), codec.parsed, None, **READ_OPTIONS
    )
    record["maybe"] = (10**4).to_bytes(3, "big", signed=True)
    with pytest.raises(RawDecodeFallback):
        codec.decode(record)


@pytest.mark.parametrize(
    ("value", "text"), [(Decimal("0.001"), "decimal places"), (Decimal("1E+3"), "precision")]
)
def test_decimal_that_does_not_fit_is_refused_on_encode(value: Decimal, text: str) -> None:
    event = Edges.model_construct(**(edges().__dict__ | {"maybe": value}))
    codec = raw_codec(Edges)
    assert codec is not None
    with pytest.raises(SerializationError, match=text):
        codec.encode(event)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), schema=strategies.records())
def test_property_raw_path_matches_fastavro_on_generated_schemas(
    data: st.DataObject, schema: dict[str, Any]
) -> None:
    cls = load_event_class(schema)
    tree = validate_schema(schema)
    event = cls.from_avro(data.draw(strategies.values(tree.schema, tree.definitions)))
    if raw_codec(cls) is None:  # a union of several non-null branches: the full path
        assert (
            cls.from_avro(
                fastavro.schemaless_reader(io.BytesIO(full_bytes(event)), cls.parsed_schema(), None)
            )
            == event
        )
        return
    data_bytes = raw_bytes(event)
    assert data_bytes == full_bytes(event)
    assert raw_read(cls, data_bytes) == event


@settings(max_examples=100, deadline=None)
@given(
    unscaled=st.integers(-(10**38) + 1, 10**38 - 1),
    fee=st.integers(-(10**9) + 1, 10**9 - 1),
    micros=st.integers(-(2**50), 2**50),
)
def test_property_decimals_and_timestamps_match_fastavro(
    unscaled: int, fee: int, micros: int
) -> None:
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    event = edges(
        big=Decimal(unscaled).scaleb(-10, Context(prec=38)),
        fee=Decimal(fee).scaleb(-2),
        ts_millis=at,
        ts_micros=at,
        local_millis=at.replace(tzinfo=None),
        local_micros=at.replace(tzinfo=None),
        at_millis=at.time(),
    )
    data = raw_bytes(event)
    assert data == full_bytes(event)
    assert raw_read(Edges, data) == Edges.from_avro(
        fastavro.schemaless_reader(io.BytesIO(data), Edges.parsed_schema(), None)
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_every_type_with_every_union_branch_matches_fastavro(
    data: st.DataObject,
) -> None:
    schema = Everything.avro_schema()
    record = data.draw(strategies.values(schema, strategies.definitions(schema)))
    record["choice"] = data.draw(
        st.one_of(
            st.integers(-5, 5),
            st.text(max_size=3),
            st.builds(Point, x=st.integers(-5, 5), y=st.integers(-5, 5)),
            st.builds(Money, amount=st.decimals(-99, 99, places=3), currency=st.just("USD")),
        )
    )
    event = Everything.model_validate(record)
    data_bytes = raw_bytes(event)
    assert data_bytes == full_bytes(event)
    assert raw_read(Everything, data_bytes) == event


def test_reader_calls_fastavro_directly_and_falls_back_to_the_public_reader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The installed fastavro passes the import-time probes, so codecs read and write directly.
    assert avroio._DIRECT
    assert avroio._DIRECT_WRITE
    event = everything(choice=Point(x=1, y=2), maybe_color=Color.RED, note="n")
    codec = raw_codec(Everything)
    assert codec is not None
    data = raw_bytes(event)
    monkeypatch.setattr(avroio, "_DIRECT", False)
    public = record_reader(codec.parsed, tagged_unions=codec.tagged_unions)
    assert public is not codec.reader
    assert codec.decode(public(io.BytesIO(data))) == event
    assert codec.read(io.BytesIO(data)) == event
    with pytest.raises(EOFError):
        codec.reader(io.BytesIO(data[:-3]))
    monkeypatch.setattr(avroio, "_DIRECT_WRITE", False)
    assert record_writer(codec.parsed)(b"", codec.encode(event)) == data
