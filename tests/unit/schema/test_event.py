"""AvroEvent and AvroEnum: class options, schema derivation, binding, validation."""

from __future__ import annotations

import json
import re
from datetime import datetime, time
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any
from uuid import UUID, uuid4

import pytest
from pydantic import BaseModel, Field, ValidationError

from eventplatform.errors import SchemaError
from eventplatform.schema import (
    AvroDecimal,
    AvroEnum,
    AvroEvent,
    Fixed,
    Int32,
    KeepOrder,
    Micros,
    Millis,
    normalized_json,
)
from tests.unit.schema.models import Everything


def fields(cls: type[AvroEvent]) -> dict[str, Any]:
    return {field["name"]: field for field in cls.avro_schema()["fields"]}


def test_class_keywords_and_docs() -> None:
    class Placed(
        AvroEvent, namespace="com.shop", name="OrderPlaced", topic="orders", aliases=["Old"]
    ):
        """An order
        was placed.

        Second paragraph.
        """

        order_id: UUID = Field(description="Id of the order.")

    schema = Placed.avro_schema()
    assert Placed.__avro_name__ == "com.shop.OrderPlaced"
    assert Placed.__avro_topic__ == "orders"
    assert schema["name"] == "com.shop.OrderPlaced"
    assert schema["doc"] == "An order was placed.\n\nSecond paragraph."
    assert schema["aliases"] == ["com.shop.Old"]
    assert schema["fields"] == [
        {
            "name": "order_id",
            "type": {"type": "string", "logicalType": "uuid"},
            "doc": "Id of the order.",
        }
    ]


def test_explicit_doc_wins_and_subclasses_inherit_the_namespace_only() -> None:
    class Base(AvroEvent, namespace="com.shop", topic="base", doc="Explicit."):
        """Docstring."""

        a: int

    class Child(Base):
        b: str = "x"

    assert Base.avro_schema()["doc"] == "Explicit."
    assert Child.__avro_name__ == "com.shop.Child"
    assert Child.__avro_topic__ is None
    assert [f["name"] for f in Child.avro_schema()["fields"]] == ["a", "b"]


def test_schema_api_is_cached_and_consistent() -> None:
    schema = Everything.avro_schema()
    assert schema == Everything.__avro_schema__
    assert schema is not Everything.__avro_schema__  # a copy callers may change
    assert Everything.parsed_schema() is Everything.parsed_schema()
    text = Everything.avro_schema_json()
    assert text is Everything.avro_schema_json()
    assert (
        text
        == normalized_json(schema)
        == json.dumps(schema, separators=(",", ":"), ensure_ascii=False)
    )


def test_type_mapping_of_the_all_types_event() -> None:
    by_name = fields(Everything)
    assert by_name["small"]["type"] == "int"
    assert by_name["big"]["type"] == "long"
    assert by_name["ratio"]["type"] == "float"
    assert by_name["precise"]["type"] == "double"
    assert by_name["digest"]["type"] == {
        "type": "fixed",
        "name": "com.example.test.MD5",
        "size": 16,
    }
    assert by_name["color"]["type"]["symbols"] == ["RED", "GREEN"]
    assert by_name["currency"]["type"]["default"] == "EUR"
    assert by_name["point"]["type"]["name"] == "com.example.test.Point"
    assert by_name["money"]["type"]["name"] == "com.example.test.money.Money"
    assert by_name["choice"]["type"] == [
        "long", "string", "com.example.test.Point", "com.example.test.money.Money",
    ]  # fmt: skip
    assert by_name["at_millis"]["type"] == {"type": "int", "logicalType": "time-millis"}
    assert by_name["at_micros"]["type"] == {"type": "long", "logicalType": "time-micros"}
    assert by_name["ts_millis"]["type"]["logicalType"] == "timestamp-millis"
    assert by_name["local_micros"]["type"]["logicalType"] == "local-timestamp-micros"
    assert by_name["fee"]["type"] == {
        "type": "fixed", "name": "com.example.test.Fee", "size": 5,
        "logicalType": "decimal", "precision": 9, "scale": 2,
    }  # fmt: skip
    assert by_name["class"]["doc"] == "An Avro name that is a Python keyword."
    assert by_name["legacy"]["aliases"] == ["old_legacy"]
    assert by_name["numbers"]["default"] == []
    assert by_name["fallback"]["default"] == "USD"
    assert by_name["scale"] == {"name": "scale", "type": ["double", "null"], "default": 1.5}
    assert by_name["note"] == {"name": "note", "type": ["null", "string"], "default": None}


def test_union_order_follows_the_default() -> None:
    class Event(AvroEvent):
        a: str | None
        b: None | str  # noqa: RUF036 - the spelling must not matter
        c: str | None = "x"
        d: int | str = "y"
        e: Annotated[str | None, KeepOrder()]
        f: list[int | None]

    by_name = fields(Event)
    assert by_name["a"]["type"] == ["null", "string"]
    assert by_name["b"]["type"] == ["null", "string"]
    assert by_name["c"] == {"name": "c", "type": ["string", "null"], "default": "x"}
    assert by_name["d"] == {"name": "d", "type": ["string", "long"], "default": "y"}
    assert by_name["e"]["type"] == ["string", "null"]
    assert by_name["f"]["type"]["items"] == ["null", "long"]


def test_plain_datetime_and_explicit_micros() -> None:
    class Event(AvroEvent):
        at: datetime
        clock: Annotated[time, Micros]

    by_name = fields(Event)
    assert by_name["at"]["type"]["logicalType"] == "timestamp-micros"
    assert by_name["clock"]["type"]["logicalType"] == "time-micros"


def test_per_event_factories_give_no_schema_default() -> None:
    class Event(AvroEvent):
        id: UUID = Field(default_factory=uuid4)

    assert "default" not in fields(Event)["id"]


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (Decimal, "a Decimal needs its precision and scale"),
        (Annotated[str, Int32], "Int32 does not apply to str"),
        (Annotated[str, Millis], "Millis does not apply to str"),
        (dict[int, str], "Avro map keys are strings"),
        (Any, "has no Avro equivalent"),
        (set[int], "has no Avro equivalent"),
        (list[int] | list[str], "the union has two array branches"),
        (Annotated[int, KeepOrder()], "KeepOrder() applies to unions only"),
    ],
)
def test_types_without_avro_equivalent_fail_at_class_definition(
    annotation: Any, message: str
) -> None:
    with pytest.raises(SchemaError, match=re.escape(message)):
        type(
            "Bad", (AvroEvent,), {"__annotations__": {"value": annotation}, "__module__": __name__}
        )


def test_bad_names_fail_at_class_definition() -> None:
    with pytest.raises(SchemaError, match=r"namespace 'com\.\.shop' is not a valid Avro namespace"):

        class A(AvroEvent, namespace="com..shop"):
            x: int

    with pytest.raises(SchemaError, match="'not-valid' is not a valid Avro field name"):

        class B(AvroEvent):
            x: int = Field(alias="not-valid")

    class Numbered(Enum):
        ONE = 1

    with pytest.raises(SchemaError, match=r"Numbered\.ONE = 1: an Avro enum symbol is a str"):

        class C(AvroEvent):
            x: Numbered


def test_default_that_fits_no_branch_fails() -> None:
    with pytest.raises(SchemaError, match=r"default 1\.5 does not fit any of the union's types"):

        class A(AvroEvent):
            x: int | str = 1.5  # type: ignore[assignment]


def test_the_base_class_has_no_schema() -> None:
    with pytest.raises(SchemaError, match="subclass it"):
        AvroEvent.avro_schema()


class Order(AvroEvent, namespace="com.shop"):
    line: Line  # defined below: the schema is derived on first use


class Line(AvroEvent, namespace="com.shop"):
    sku: str


def test_forward_references_bind_on_first_use() -> None:
    assert fields(Order)["line"]["type"]["name"] == "com.shop.Line"
    assert Order(line=Line(sku="a")).to_avro() == {"line": {"sku": "a"}}


def test_recursive_types() -> None:
    class Node(AvroEvent, namespace="com.shop"):
        value: int
        next: Node | None = None

    assert fields(Node)["next"]["type"] == ["null", "com.shop.Node"]
    chain = Node(value=1, next=Node(value=2))
    assert Node.from_avro(chain.to_avro()) == chain


def test_from_avro_validates_what_avro_cannot_express() -> None:
    class Event(AvroEvent):
        small: Annotated[int, Int32]
        price: Annotated[Decimal, AvroDecimal(4, 2)]
        digest: Annotated[bytes, Fixed(2, name="Two")]
        name: str = Field(max_length=3)

    good = {"small": 1, "price": Decimal("12.34"), "digest": b"ab", "name": "abc"}
    assert Event.from_avro(good).to_avro() == good
    for bad in (
        {"small": 2**31},
        {"price": Decimal("123.4")},
        {"digest": b"abc"},
        {"name": "abcd"},
    ):
        with pytest.raises(ValidationError):
            Event.from_avro({**good, **bad})
    with pytest.raises(ValidationError):
        Event.from_avro({**good, "unexpected": 1})


def test_avro_enum_options() -> None:
    class Kind(AvroEnum, namespace="com.kinds", name="KindV2", aliases=["Kind"], default="A"):
        """Kinds."""

        A = "A"
        B = "B"

    class Plain(BaseModel):
        kind: Kind

    class Event(AvroEvent, namespace="com.shop"):
        plain: Plain

    kind = fields(Event)["plain"]["type"]["fields"][0]["type"]
    assert kind == {
        "type": "enum", "name": "com.kinds.KindV2", "doc": "Kinds.",
        "aliases": ["com.kinds.Kind"], "symbols": ["A", "B"], "default": "A",
    }  # fmt: skip
    assert fields(Event)["plain"]["type"]["name"] == "com.shop.Plain"
