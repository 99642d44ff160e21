"""Example values from Avro schemas: every type, in the JSON form the ingress accepts."""

from __future__ import annotations

import pytest

from eventplatform.catalogue.examples import example_value
from eventplatform.errors import SchemaError


def test_every_avro_type_has_an_example() -> None:
    schema = {
        "type": "record",
        "name": "x.All",
        "fields": [
            {"name": "flag", "type": "boolean"},
            {"name": "count", "type": "int"},
            {"name": "ratio", "type": "double"},
            {"name": "contact_email", "type": "string"},
            {"name": "homepage_url", "type": "string"},
            {"name": "raw", "type": "bytes"},
            {"name": "tags", "type": {"type": "map", "values": "long"}},
            {"name": "kind", "type": {"type": "enum", "name": "x.Kind", "symbols": ["B", "A"]}},
            {"name": "again", "type": "x.Kind"},
            {"name": "when", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
            {"name": "cents", "type": {"type": "bytes", "logicalType": "decimal",
                                       "precision": 4, "scale": 4}},
            {"name": "whole", "type": {"type": "fixed", "name": "x.W", "size": 8,
                                       "logicalType": "decimal", "precision": 6}},
            {"name": "maybe", "type": ["null", "int"]},
            {"name": "level", "type": "string", "default": "info"},
        ],
    }  # fmt: skip

    assert example_value(schema) == {
        "flag": True,
        "count": 1,
        "ratio": 1.5,
        "contact_email": "someone@example.com",
        "homepage_url": "https://example.com/",
        "raw": "",
        "tags": {"key": 1},
        "kind": "B",
        "again": "B",
        "when": "2026-05-01T12:00:00Z",
        "day": "2026-05-01",
        "local": "2026-05-01T12:00:00",
        "cents": "0.9999",
        "whole": "9",
        "maybe": 1,
        "level": "info",
    }


def test_a_recursive_record_ends() -> None:
    schema = {
        "type": "record",
        "name": "t.Node",
        "fields": [
            {"name": "label", "type": "string"},
            {"name": "children", "type": {"type": "array", "items": "t.Node"}},
        ],
    }
    value = example_value(schema)
    depth = 0
    while value["children"]:
        value = value["children"][0]
        depth += 1
    assert 1 < depth < 20
    assert value["label"] == "label-1"


def test_an_unknown_type_is_an_error() -> None:
    with pytest.raises(SchemaError, match=r"unknown Avro type 'x\.Missing'"):
        example_value(
            {"type": "record", "name": "x.R", "fields": [{"name": "a", "type": "x.Missing"}]}
        )
