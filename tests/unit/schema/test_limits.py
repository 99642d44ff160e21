"""Nothing is encoded that cannot be decoded: what the encoders take, the decoders return equal.

Each case puts one value into ``boxes[1]`` of a :class:`Crate` by plain assignment (pydantic
does not re-validate it, as for any attribute set after construction) and encodes the crate on
both paths: the serde's writer (the fast raw codec) and ``to_avro()`` + fastavro's public
writer (the readable path). Either both accept it, write the same bytes, and both decoders
return it equal (up to the precision the schema declares: ``Millis``, ``Float32``), or both
refuse it with a :class:`SerializationError` naming the field path.
"""

from __future__ import annotations

import io
import math
import os
import struct
import warnings
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import fastavro
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import AwareDatetime, NaiveDatetime

from eventplatform.errors import SerializationError
from eventplatform.schema import (
    AvroDecimal,
    AvroEnum,
    AvroEvent,
    Fixed,
    Float32,
    Int32,
    Millis,
)
from eventplatform.schema._codec.rawcodec import raw_codec
from eventplatform.schema.limits import FLOAT32_LIMIT, MILLIS_MAX, MILLIS_MIN
from eventplatform.serde.serializer import PreparedWriter
from eventplatform.serde.wire import HEADER_SIZE


class Shade(AvroEnum, namespace="com.example.limits"):
    """A colour."""

    DARK = "DARK"
    LIGHT = "LIGHT"


class Box(AvroEvent, namespace="com.example.limits"):
    """One field of every Avro type and logical type."""

    flag: bool = False
    small: Annotated[int, Int32] = 0
    big: int = 0
    ratio: Annotated[float, Float32] = 0.0
    precise: float = 0.0
    text: str = ""
    blob: bytes = b""
    digest: Annotated[bytes, Fixed(4, name="Digest")] = b"abcd"
    shade: Shade = Shade.DARK
    id: UUID = UUID(int=1)
    day: date = date(2026, 1, 1)
    t_ms: Annotated[time, Millis] = time(0)
    t_us: time = time(0)
    ts_ms: Annotated[AwareDatetime, Millis] = datetime(2026, 1, 1, tzinfo=UTC)
    ts_us: AwareDatetime = datetime(2026, 1, 1, tzinfo=UTC)
    wall: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    local_ms: Annotated[NaiveDatetime, Millis] = datetime(2026, 1, 1)
    local_us: NaiveDatetime = datetime(2026, 1, 1)
    price: Annotated[Decimal, AvroDecimal(5, 2)] = Decimal("0.00")
    fee: Annotated[Decimal, AvroDecimal(4, 1), Fixed(2, name="Fee")] = Decimal("0.0")
    maybe: int | None = None
    choice: int | str = 0


class Crate(AvroEvent, namespace="com.example.limits"):
    """Boxes in an array, so a refused value has a path with an index."""

    boxes: list[Box]


WRITER = PreparedWriter(Crate, "crates-value", 1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def crate_with(field: str, value: Any) -> Crate:
    crate = Crate(boxes=[Box(), Box()])
    setattr(crate.boxes[1], field, value)  # no validation on assignment: as any later change
    return crate


def expected(field: str, value: Any) -> Any:
    """What a reader returns for ``value``: the value at the schema's declared precision."""
    if field == "ratio" and math.isfinite(value):
        return struct.unpack("<f", struct.pack("<f", value))[0]
    if field == "t_ms":
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    if field == "ts_ms":
        return EPOCH + timedelta(milliseconds=(value - EPOCH) // timedelta(milliseconds=1))
    if field == "local_ms":
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    if field == "shade":
        return Shade(value)
    if field == "wall" and value.tzinfo is None:
        return value.astimezone(UTC)  # a naive datetime is local time (as fastavro writes it)
    return value


def same(a: Any, b: Any) -> bool:
    """Equal, NaN to NaN, and of the same type (a decoded enum member, not its symbol)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b) and type(a) is type(b)


def to_avro(crate: Crate) -> dict[str, Any]:
    with warnings.catch_warnings():
        # pydantic warns when it serializes an attribute of the wrong type (text = 7)
        warnings.simplefilter("ignore")
        return crate.to_avro()


def full_path(crate: Crate) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, Crate.parsed_schema(), to_avro(crate))
    return buffer.getvalue()


def outcome(encode: Callable[[], bytes]) -> bytes | SerializationError:
    try:
        return encode()
    except SerializationError as exc:
        return exc


def _ignore(note: str) -> None:
    pass


def assert_round_trip_or_refusal(
    field: str, value: Any, record: Callable[[str], object] = _ignore
) -> None:
    crate = crate_with(field, value)
    framed = outcome(lambda: WRITER.encode(crate))
    full = outcome(lambda: full_path(crate))
    if isinstance(framed, SerializationError) or isinstance(full, SerializationError):
        record(f"{field}: refused")
        path = f"boxes[1].{field}"
        for error in (framed, full):
            assert isinstance(error, SerializationError), (field, value, framed, full)
            assert error.field == path, error
            assert path in str(error)
        return
    record(f"{field}: accepted")
    body = framed[HEADER_SIZE:]
    assert body == full
    codec = raw_codec(Crate)
    assert codec is not None
    by_raw = codec.read(io.BytesIO(body))
    by_full = Crate.from_avro(
        fastavro.schemaless_reader(io.BytesIO(body), Crate.parsed_schema(), None)
    )
    want = expected(field, value)
    for back in (by_raw, by_full):
        got = getattr(back.boxes[1], field)
        assert same(got, want), (field, value, got, want)
        assert back.boxes[0] == Box()


FIRST_UTC = datetime.min.replace(tzinfo=UTC)
LAST_UTC = datetime.max.replace(tzinfo=UTC)
EAST = timezone(timedelta(hours=6, minutes=17))
WEST = timezone(-timedelta(hours=5))

ACCEPTED: list[tuple[str, Any]] = [
    ("small", -(2**31)),
    ("small", 2**31 - 1),
    ("big", -(2**63)),
    ("big", 2**63 - 1),
    ("ratio", float("nan")),
    ("ratio", float("inf")),
    ("ratio", -float("inf")),
    ("ratio", 3.4028234663852886e38),  # the largest 32-bit float
    ("ratio", 1e-50),  # rounds to zero: the declared precision
    ("precise", float("nan")),
    ("precise", -float("inf")),
    ("precise", 1.7976931348623157e308),
    ("digest", b"\x00\xff\x00\xff"),
    ("shade", Shade.LIGHT),
    ("day", date.min),
    ("day", date.max),
    ("t_ms", time.max),
    ("t_us", time.max),
    ("ts_ms", FIRST_UTC),
    ("ts_ms", LAST_UTC),  # truncated to 23:59:59.999
    ("ts_us", FIRST_UTC),
    ("ts_us", LAST_UTC),
    ("ts_ms", datetime(1, 1, 1, 6, 17, tzinfo=EAST)),  # exactly the first instant
    ("ts_us", datetime(9999, 12, 31, 18, 59, 59, 999999, tzinfo=WEST)),  # exactly the last
    ("local_ms", datetime.min),
    ("local_ms", datetime.max),
    ("local_us", datetime.min),
    ("local_us", datetime.max),
    ("price", Decimal("999.99")),
    ("price", Decimal("-999.99")),
    ("price", Decimal("1.10")),  # more digits than the scale, but zeros: the same value
    ("price", Decimal("1E+2")),
    ("price", Decimal("-0.000")),
    ("fee", Decimal("-0")),  # fastavro alone writes -0 on a fixed as -0.2
    ("fee", Decimal("999.9")),
    ("fee", Decimal("-999.9")),
    ("maybe", 2**63 - 1),
    ("choice", -(2**63)),
    ("choice", "text"),
]

REFUSED: list[tuple[str, Any, str]] = [
    ("small", 2**31, "outside Avro int's range"),
    ("small", -(2**31) - 1, "outside Avro int's range"),
    ("big", 2**63, "outside Avro long's range"),
    ("big", -(2**63) - 1, "outside Avro long's range"),
    ("ratio", 3.5e38, "beyond the range of Avro float"),
    ("ratio", -1e300, "beyond the range of Avro float"),
    ("ratio", FLOAT32_LIMIT, "beyond the range of Avro float"),
    ("precise", 10**400, "beyond the range of Avro double"),
    ("text", 7, "expected a string"),
    ("digest", b"abc", "exactly 4 bytes"),
    ("shade", "PURPLE", "not a symbol"),
    ("id", "not-a-uuid", "expected a UUID"),
    ("day", datetime(2026, 1, 1, 12), "expected a date"),
    ("t_ms", time(10, tzinfo=UTC), "UTC offset"),
    ("t_us", time(10, tzinfo=EAST), "UTC offset"),
    # The report of issue 10: before year 1 in UTC.
    ("ts_ms", datetime(1, 1, 1, 0, 47, 14, 930000, tzinfo=EAST), "before 0001-01-01"),
    ("ts_us", datetime(1, 1, 1, tzinfo=timezone(timedelta(microseconds=1))), "before 0001"),
    ("ts_ms", datetime(9999, 12, 31, 23, tzinfo=WEST), "after 9999-12-31"),
    ("ts_us", datetime(9999, 12, 31, 19, tzinfo=WEST), "after 9999-12-31"),
    ("local_ms", datetime(2026, 1, 1, tzinfo=UTC), "UTC offset"),
    ("price", Decimal("1000.00"), "precision"),
    ("price", Decimal("0.001"), "decimal places"),
    ("price", Decimal("NaN"), "not a finite decimal"),
    ("price", Decimal("-Infinity"), "not a finite decimal"),
    ("fee", Decimal("1000.0"), "precision"),
    ("maybe", 2**64, "outside Avro long's range"),
    ("choice", 2**64, "outside Avro long's range"),
]


def test_the_bounds_are_the_first_and_last_instants_a_datetime_holds() -> None:
    assert EPOCH + timedelta(milliseconds=MILLIS_MIN) == FIRST_UTC
    assert EPOCH + timedelta(milliseconds=MILLIS_MAX) == LAST_UTC.replace(microsecond=999000)
    with pytest.raises(OverflowError):
        EPOCH + timedelta(milliseconds=MILLIS_MIN - 1)
    with pytest.raises(OverflowError):
        EPOCH + timedelta(milliseconds=MILLIS_MAX + 1)


@pytest.mark.parametrize(("field", "value"), ACCEPTED)
def test_edge_values_within_range_read_back_equal(field: str, value: Any) -> None:
    crate = crate_with(field, value)
    WRITER.encode(crate)  # accepted
    assert_round_trip_or_refusal(field, value)


@pytest.mark.parametrize(("field", "value", "reason"), REFUSED)
def test_values_a_reader_cannot_return_are_refused_naming_the_field(
    field: str, value: Any, reason: str
) -> None:
    crate = crate_with(field, value)
    with pytest.raises(SerializationError, match=reason) as raw_error:
        WRITER.encode(crate)
    assert raw_error.value.field == f"boxes[1].{field}"
    assert "cannot encode com.example.limits.Crate for subject 'crates-value'" in str(
        raw_error.value
    )
    with pytest.raises(SerializationError, match=reason):
        to_avro(crate)
    assert_round_trip_or_refusal(field, value)


def test_the_reported_timestamp_is_refused_with_its_path() -> None:
    # Issue 10: "0001-01-01T00:47:14.930+06:17" was accepted and every consumer dead-lettered it.
    box = Box.model_validate({"ts_ms": "0001-01-01T00:47:14.930+06:17"})
    with pytest.raises(SerializationError) as error:
        WRITER.encode(Crate(boxes=[Box(), box]))
    assert error.value.field == "boxes[1].ts_ms"
    assert str(error.value).endswith(
        "Crate.boxes[1].ts_ms: 0001-01-01T00:47:14.930000+06:17 is before "
        "0001-01-01T00:00:00Z, the first instant a timestamp-millis reader can represent"
    )


# -- property: every type, values inside, on and beyond the edges ------------------------------

_OFFSETS = st.builds(
    timezone,
    st.timedeltas(
        min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
    ),
)
_ZONES = st.none() | _OFFSETS


def _decimals(precision: int, scale: int) -> st.SearchStrategy[Decimal]:
    bound = 10**precision
    unscaled = st.integers(-bound - 2, bound + 2) | st.sampled_from([bound - 1, -bound + 1, bound])
    exact = st.builds(
        lambda u, s: Decimal(u).scaleb(-s), unscaled, st.integers(scale - 1, scale + 1)
    )
    return exact | st.sampled_from([Decimal("NaN"), Decimal("Infinity"), Decimal("-0")])


def _ints(bits: int) -> st.SearchStrategy[int]:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    edges = st.sampled_from([low, high, low - 1, high + 1, 0, -1])
    return edges | st.integers(low - 2**8, high + 2**8) | st.integers(-1000, 1000)


_FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [3.4028234663852886e38, 3.4028235677973362e38, FLOAT32_LIMIT, -FLOAT32_LIMIT, 5e-324]
)
# Aware datetimes, a third of them within a day of either end, where an offset crosses it.
_AWARE = (
    st.datetimes(timezones=_OFFSETS)
    | st.datetimes(max_value=datetime(1, 1, 2), timezones=_OFFSETS)
    | st.datetimes(min_value=datetime(9999, 12, 30), timezones=_OFFSETS)
    | st.sampled_from(
        [
            datetime.min.replace(tzinfo=EAST),
            datetime.max.replace(tzinfo=WEST),
            datetime.min.replace(tzinfo=UTC),
            datetime.max.replace(tzinfo=UTC),
        ]
    )
)

VALUES: dict[str, st.SearchStrategy[Any]] = {
    "flag": st.booleans(),
    "small": _ints(32),
    "big": _ints(64),
    "ratio": _FLOATS,
    "precise": _FLOATS,
    "text": st.text(max_size=5),
    "blob": st.binary(max_size=5),
    "digest": st.binary(min_size=3, max_size=5),
    "shade": st.sampled_from([Shade.DARK, Shade.LIGHT, "LIGHT", "PURPLE"]),
    "id": st.uuids() | st.just("6e355f74-553c-43cc-8b78-87e0ed16fafc"),
    "day": st.dates() | st.datetimes(),
    "t_ms": st.times(timezones=_ZONES),
    "t_us": st.times(timezones=_ZONES),
    "ts_ms": _AWARE,
    "ts_us": _AWARE,
    # Naive values are local time (fastavro's convention); kept where every platform's
    # mktime converts them.
    "wall": st.datetimes(min_value=datetime(1902, 1, 1), max_value=datetime(2037, 12, 31)) | _AWARE,
    "local_ms": st.datetimes(timezones=_ZONES),
    "local_us": st.datetimes(timezones=_ZONES),
    "price": _decimals(5, 2),
    "fee": _decimals(4, 1),
    "maybe": st.none() | _ints(64),
    "choice": _ints(64) | st.text(max_size=3),
}


def test_every_field_of_box_has_a_strategy() -> None:
    assert set(VALUES) == set(Box.model_fields)


@settings(
    max_examples=int(os.environ.get("LIMITS_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_property_what_is_encoded_is_decoded_equal_and_the_rest_is_refused_by_path(
    data: st.DataObject,
) -> None:
    field = data.draw(st.sampled_from(sorted(VALUES)))
    value = data.draw(VALUES[field])
    assert_round_trip_or_refusal(field, value, event)


def test_produce_names_the_line_and_the_field() -> None:
    from eventplatform.cli.io import read_events

    good = Box().model_dump_json()
    bad = Box.model_validate({"ts_ms": "0001-01-01T00:47:14.930+06:17"}).model_dump_json()
    parsed, problems = read_events([good, bad], Box, key=None, key_field=None)
    assert [line.number for line in parsed] == [1]
    assert problems == [
        "line 2: does not fit com.example.limits.Box: Box.ts_ms: "
        "0001-01-01T00:47:14.930000+06:17 is before 0001-01-01T00:00:00Z, the first instant "
        "a timestamp-millis reader can represent"
    ]
