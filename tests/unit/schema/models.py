"""Hand-written event classes covering every Python type eventplatform maps to Avro."""

from __future__ import annotations

import enum
from datetime import date, time
from decimal import Decimal
from typing import Annotated
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NaiveDatetime

from eventplatform.schema import (
    AvroDecimal,
    AvroEnum,
    AvroEvent,
    AvroField,
    Fixed,
    Float32,
    Int32,
    Millis,
)


class Color(enum.Enum):
    """A plain Enum whose members are not str: encoded through the plan."""

    RED = "RED"
    GREEN = "GREEN"


class Currency(AvroEnum, namespace="com.example.test", default="EUR"):
    """Currency of an amount."""

    EUR = "EUR"
    USD = "USD"


class Point(BaseModel):
    """A plain pydantic model: named after its class, in the using record's namespace."""

    x: Annotated[int, Int32]
    y: Annotated[int, Int32]


class Money(AvroEvent, namespace="com.example.test.money"):
    """An amount in a currency, from another namespace."""

    amount: Annotated[Decimal, AvroDecimal(12, 3)]
    currency: Currency


MD5 = Annotated[bytes, Fixed(16, name="MD5")]
Fee = Annotated[Decimal, AvroDecimal(9, 2), Fixed(5, name="Fee")]


class Everything(
    AvroEvent,
    namespace="com.example.test",
    topic="everything",
    aliases=["com.example.test.AllTypes"],
):
    """Every Avro type eventplatform maps."""

    model_config = ConfigDict(populate_by_name=True)

    flag: bool
    small: Annotated[int, Int32]
    big: int
    ratio: Annotated[float, Float32]
    precise: float
    text: str
    blob: bytes
    digest: MD5
    color: Color
    currency: Currency
    point: Point
    money: Money
    tags: list[str]
    matrix: list[list[Annotated[int, Int32]]]
    counts: dict[str, int]
    by_color: dict[str, list[Color]]
    choice: int | str | Point | Money
    id: UUID
    day: date
    at_millis: Annotated[time, Millis]
    at_micros: time
    ts_millis: Annotated[AwareDatetime, Millis]
    ts_micros: AwareDatetime
    local_millis: Annotated[NaiveDatetime, Millis]
    local_micros: NaiveDatetime
    price: Annotated[Decimal, AvroDecimal(10, 2)]
    fee: Fee
    renamed: str = Field(alias="class", description="An Avro name that is a Python keyword.")
    note: str | None = None
    maybe_color: Color | None = None
    legacy: Annotated[str, AvroField(aliases=("old_legacy",))] = "x"
    numbers: list[int] = Field(default_factory=list)
    fallback: Currency = Currency.USD
    scale: float | None = 1.5
