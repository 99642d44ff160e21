"""JSON → typed events, and JSON Schema from the Avro contract that says what is accepted."""

from __future__ import annotations

import json
from typing import Any

import pytest

from eventplatform.connectors.builtin.ingress.jsonschema import (
    DATE_PATTERN,
    DATETIME_PATTERN,
    UUID_PATTERN,
    avro_to_json_schema,
    event_json_schema,
)
from eventplatform.connectors.sdk.payloads import json_path, parse_event
from eventplatform.errors import InvalidPayload, MalformedPayload, SchemaError
from tests.integration.connectors.helpers import Line, Order, Tick, order_json


def test_valid_json_becomes_the_event() -> None:
    event = parse_event(Order, json.dumps(order_json(1, note="n")))
    assert event.customer == "c-1"
    assert str(event.total) == "5.00"
    assert event.note == "n"


@pytest.mark.parametrize("text", [b"", b"{", b'{"a": }', b"\xff\xfe", b"{'single': 1}"])
def test_malformed_json_is_its_own_error(text: bytes) -> None:
    with pytest.raises(MalformedPayload, match="malformed JSON"):
        parse_event(Order, text)


def test_violations_list_each_path_and_reason() -> None:
    data = order_json(2, currency="XXX", extra=1)
    data["lines"][0]["quantity"] = "2"  # strict: a string is not an int
    del data["customer"]
    with pytest.raises(InvalidPayload) as caught:
        parse_event(Order, json.dumps(data))
    paths = [path for path, _ in caught.value.errors]
    assert paths == ["$.customer", "$.lines[0].quantity", "$.currency", "$.extra"]
    assert not isinstance(caught.value, MalformedPayload)


def test_a_json_array_is_a_violation_not_malformed() -> None:
    with pytest.raises(InvalidPayload) as caught:
        parse_event(Order, "[]")
    assert caught.value.errors == [("$", "Input should be an object")]


def test_json_paths_quote_what_is_not_an_identifier() -> None:
    assert json_path(()) == "$"
    assert json_path(("a", 0, "b c", "it's")) == "$.a[0]['b c']['it\\'s']"


def test_the_json_schema_follows_the_avro_contract() -> None:
    components: dict[str, Any] = {}
    assert event_json_schema(Order, components) == {
        "$ref": "#/components/schemas/tests.connectors.Order"
    }
    order = components["tests.connectors.Order"]
    props = order["properties"]
    assert order["additionalProperties"] is False
    assert order["required"] == ["order_id", "customer", "lines", "total", "currency", "placed_at"]
    assert props["order_id"]["pattern"] == UUID_PATTERN
    assert props["placed_at"]["pattern"] == DATETIME_PATTERN
    assert props["total"]["type"] == "string"
    assert props["total"]["pattern"] == r"^-?[0-9]{1,8}(?:\.[0-9]{1,2})?$"
    assert props["lines"]["items"] == {"$ref": "#/components/schemas/tests.connectors.Line"}
    assert props["note"]["anyOf"] == [{"type": "null"}, {"type": "string"}]
    assert props["note"]["default"] is None
    line = components["tests.connectors.Line"]["properties"]
    assert line["quantity"]["maximum"] == 2**31 - 1
    assert components["tests.connectors.Currency"]["enum"] == ["EUR", "USD"]


def test_other_avro_types_map_too() -> None:
    components: dict[str, Any] = {}
    schema = {
        "type": "record",
        "name": "ns.All",
        "fields": [
            {"name": "m", "type": {"type": "map", "values": "long"}},
            {"name": "f", "type": {"type": "fixed", "name": "ns.Hash", "size": 16}},
            {"name": "again", "type": "ns.Hash"},
            {"name": "d", "type": {"type": "int", "logicalType": "date"}},
            {"name": "b", "type": "bytes", "default": "\u00ff"},
            {"name": "self", "type": ["null", "ns.All"], "default": None},
        ],
    }
    avro_to_json_schema(schema, components)
    props = components["ns.All"]["properties"]
    assert props["m"] == {"type": "object", "additionalProperties": _long()}
    assert props["again"] == {"$ref": "#/components/schemas/ns.Hash"}
    assert props["d"] == {
        "type": "string",
        "pattern": DATE_PATTERN,
        "description": "A date (ISO 8601).",
    }
    assert components["ns.Hash"]["pattern"] == "^[\\u0000-\\u007f]{16}$"
    assert "default" not in props["b"]  # an Avro bytes default is not its JSON form
    assert props["self"]["anyOf"][1] == {"$ref": "#/components/schemas/ns.All"}
    with pytest.raises(SchemaError, match="unknown Avro type"):
        avro_to_json_schema("ns.Missing", {})


def _long() -> dict[str, Any]:
    return {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}


@pytest.mark.parametrize(("number", "expected"), [("-2546.0", -2546), ("1e3", 1000), ("2E+1", 20)])
def test_a_number_with_a_zero_fraction_is_an_integer(number: str, expected: int) -> None:
    # JSON Schema (draft 2020-12, 6.1.1): 2.0 is an integer, so the document allows it.
    assert parse_event(Tick, f'{{"n": {number}}}').n == expected
    line = parse_event(Line, f'{{"sku": "a", "quantity": {number}, "price": "1.00"}}')
    assert line.quantity == expected


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ('{"n": 2.5}', "$.n"),  # a fraction is not an integer
        ('{"n": 1e20}', "$.n"),  # an integer, beyond 32 bits
        ('{"n": "3"}', "$.n"),  # strict: a string is not a number
        ('{"n": 2.0, "label": 3.0}', "$.label"),  # 3 is not a string either way
        ('{"n": 2.0, "label": NaN}', "$.label"),  # NaN is not JSON
    ],
)
def test_other_numbers_are_still_refused_for_integers(body: str, path: str) -> None:
    with pytest.raises(InvalidPayload) as caught:
        parse_event(Tick, body)
    assert path in [where for where, _ in caught.value.errors]
