"""Markers check their own arguments and add the pydantic constraints the Avro type implies."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, get_args

import pytest
from pydantic import TypeAdapter, ValidationError

from eventplatform.errors import SchemaError
from eventplatform.schema import AvroDecimal, AvroField, Fixed, Int32, KeepOrder


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: AvroDecimal(0), "precision must be a positive int"),
        (lambda: AvroDecimal(4, 5), r"scale must be an int in 0\.\.precision \(4\)"),
        (lambda: Fixed(-1, name="F"), "fixed size must be a non-negative int"),
        (lambda: Fixed(4, name="not valid"), "is not a valid Avro name"),
        (lambda: Fixed(4, name="F", namespace="a..b"), "is not a valid namespace"),
        (lambda: AvroField(aliases=("a-b",)), "is not a valid Avro name"),
        (lambda: AvroField(order="sideways"), "order must be ascending"),  # type: ignore[arg-type]
    ],
)
def test_invalid_marker_arguments(make: Any, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        make()


def test_int32_bounds_also_for_optional_values() -> None:
    adapter = TypeAdapter(Annotated[int | None, Int32])
    assert adapter.validate_python(2**31 - 1) == 2**31 - 1
    assert adapter.validate_python(None) is None
    with pytest.raises(ValidationError):
        adapter.validate_python(2**31)


def test_decimal_digits_and_places() -> None:
    adapter = TypeAdapter(Annotated[Decimal, AvroDecimal(4, 2)])
    assert adapter.validate_python(Decimal("99.99")) == Decimal("99.99")
    for bad in ("999", "1.234"):
        with pytest.raises(ValidationError):
            adapter.validate_python(Decimal(bad))


def test_fixed_length_on_bytes_but_not_on_decimals() -> None:
    assert TypeAdapter(Annotated[bytes, Fixed(2, name="Two")]).validate_python(b"ab") == b"ab"
    with pytest.raises(ValidationError):
        TypeAdapter(Annotated[bytes, Fixed(2, name="Two")]).validate_python(b"abc")
    money = TypeAdapter(Annotated[Decimal, AvroDecimal(9, 2), Fixed(5, name="Money")])
    assert money.validate_python(Decimal("1234567.89")) == Decimal("1234567.89")


def test_markers_on_the_wrong_type_are_refused() -> None:
    with pytest.raises(SchemaError, match=r"Int32 does not apply to str \(only to int\)"):
        TypeAdapter(Annotated[str, Int32])


def test_keep_order_and_field_markers_compare_by_identity() -> None:
    # typing caches Annotated[...] by equal arguments, and unions are equal in any order:
    # equal markers would hand back an Annotated with the other union order.
    assert KeepOrder() != KeepOrder()
    assert AvroField(order="descending") != AvroField(order="descending")
    first = Annotated[int | None, AvroField(order="ignore")]
    second = Annotated[None | int, AvroField(order="ignore")]  # noqa: RUF036
    assert get_args(get_args(first)[0]) == (int, type(None))
    assert get_args(get_args(second)[0]) == (type(None), int)
