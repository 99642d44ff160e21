"""check_class_against_schema reports each kind of difference with its field path."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

import pytest
from pydantic import AwareDatetime

from eventplatform.errors import SchemaMismatch
from eventplatform.schema import (
    AvroDecimal,
    AvroEvent,
    AvroField,
    Int32,
    Millis,
    check_class_against_schema,
    ensure_class_matches_schema,
)

CONTRACT: dict[str, Any] = {
    "type": "record",
    "name": "Order",
    "namespace": "com.acme",
    "fields": [
        {"name": "id", "type": "string", "doc": "Docs are not compared."},
        {"name": "count", "type": "int", "default": 0},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {
            "name": "lines",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Line",
                    "fields": [
                        {
                            "name": "price",
                            "type": {
                                "type": "bytes",
                                "logicalType": "decimal",
                                "precision": 10,
                                "scale": 2,
                            },
                        }
                    ],
                },
            },
        },
    ],
}


class Status(StrEnum):
    NEW = "NEW"
    PAID = "PAID"


class Line(AvroEvent, namespace="com.acme"):
    price: Annotated[Decimal, AvroDecimal(10, 2)]


class Order(AvroEvent, namespace="com.acme"):
    id: str
    count: Annotated[int, Int32] = 0
    note: str | None = None
    status: Status
    at: Annotated[AwareDatetime, Millis]
    lines: list[Line]


def test_a_matching_class_has_no_differences() -> None:
    assert check_class_against_schema(Order, CONTRACT) == []
    assert check_class_against_schema(Order, json.dumps(CONTRACT)) == []
    ensure_class_matches_schema(Order, CONTRACT)


def test_missing_and_extra_fields() -> None:
    class Order(AvroEvent, namespace="com.acme"):  # no `note`, one field too many
        id: str
        count: Annotated[int, Int32] = 0
        status: Status
        at: Annotated[AwareDatetime, Millis]
        lines: list[Line]
        extra: bool = False

    assert check_class_against_schema(Order, CONTRACT) == [
        "Order.note: missing in the class",
        "Order.extra: not in the schema",
    ]


def test_type_differs() -> None:
    class Order(AvroEvent, namespace="com.acme"):
        id: int
        count: Annotated[int, Int32] = 0
        note: str | None = None
        status: Status
        at: Annotated[AwareDatetime, Millis]
        lines: list[Line]

    assert check_class_against_schema(Order, CONTRACT) == [
        "Order.id: type differs: schema string, class long"
    ]


def test_optional_versus_required() -> None:
    class Order(AvroEvent, namespace="com.acme"):
        id: str | None = None
        count: Annotated[int, Int32] = 0
        note: str
        status: Status
        at: Annotated[AwareDatetime, Millis]
        lines: list[Line]

    assert check_class_against_schema(Order, CONTRACT) == [
        "Order.id: required in the schema (string), optional in the class (null | string)",
        "Order.id: default differs: schema none, class null",
        "Order.note: optional in the schema (null | string), required in the class (string)",
        "Order.note: default differs: schema null, class none",
    ]


def test_default_differs() -> None:
    class Order(AvroEvent, namespace="com.acme"):
        id: str
        count: Annotated[int, Int32] = 1
        note: str | None = None
        status: Status
        at: Annotated[AwareDatetime, Millis]
        lines: list[Line]

    assert check_class_against_schema(Order, CONTRACT) == [
        "Order.count: default differs: schema 0, class 1"
    ]


def test_enum_symbols_differ() -> None:
    class Status(StrEnum):
        NEW = "NEW"
        SHIPPED = "SHIPPED"

    class Order(AvroEvent, namespace="com.acme"):
        id: str
        count: Annotated[int, Int32] = 0
        note: str | None = None
        status: Status
        at: Annotated[AwareDatetime, Millis]
        lines: list[Line]

    assert check_class_against_schema(Order, CONTRACT) == [
        "Order.status: enum symbols differ: schema [NEW, PAID], class [NEW, SHIPPED]"
    ]


def test_logical_type_and_decimal_differ_in_nested_records() -> None:
    class Line(AvroEvent, namespace="com.acme"):
        price: Annotated[Decimal, AvroDecimal(12, 2)]

    class Order(AvroEvent, namespace="com.acme"):
        id: str
        count: Annotated[int, Int32] = 0
        note: str | None = None
        status: Status
        at: datetime
        lines: list[Line]

    assert check_class_against_schema(Order, CONTRACT) == [
        "Order.at: logical type differs: schema timestamp-millis (long (timestamp-millis)), "
        "class timestamp-micros (long (timestamp-micros))",
        "Order.lines[].price: decimal differs: schema decimal(10,2) on bytes, "
        "class decimal(12,2) on bytes",
    ]


def test_names_order_and_aliases_differ() -> None:
    class Order(AvroEvent, namespace="com.acme.v2"):
        count: Annotated[int, Int32, AvroField(aliases=("quantity",))] = 0
        id: str
        note: str | None = None
        status: Status
        at: Annotated[AwareDatetime, Millis]
        lines: list[Line]

    assert check_class_against_schema(Order, CONTRACT) == [
        "Order: record name differs: schema com.acme.Order, class com.acme.v2.Order",
        "Order: field order differs: schema [id, count, note, status, at, lines], "
        "class [count, id, note, status, at, lines]",
        "Order.count: aliases differ: schema [], class ['quantity']",
        "Order.status: enum name differs: schema com.acme.Status, class com.acme.v2.Status",
    ]


def test_ensure_raises_with_every_difference() -> None:
    class Order(AvroEvent, namespace="com.acme"):
        id: int
        count: Annotated[int, Int32] = 1

    with pytest.raises(SchemaMismatch) as info:
        ensure_class_matches_schema(Order, CONTRACT)
    message = str(info.value)
    assert message.startswith("test_ensure_raises_with_every_difference.<locals>.Order disagrees")
    assert "Order.id: type differs: schema string, class long" in message
    assert "Order.lines: missing in the class" in message
