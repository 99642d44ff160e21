"""Invalid .avsc documents fail with the file, the JSON path and the reason; normal forms."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import avro.schema
import pytest

from eventplatform.errors import SchemaParseError
from eventplatform.schema import canonical_form, normalize, normalized_json, parse_avsc


def record(*fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "record",
        "name": "Order",
        "namespace": "com.example",
        "fields": list(fields),
        **extra,
    }


def write(tmp_path: Path, schema: Any) -> Path:
    path = tmp_path / "Order.avsc"
    path.write_text(schema if isinstance(schema, str) else json.dumps(schema, indent=2))
    return path


def error_for(tmp_path: Path, schema: Any) -> SchemaParseError:
    path = write(tmp_path, schema)
    with pytest.raises(SchemaParseError) as info:
        parse_avsc(path)
    assert str(path) in str(info.value)
    assert info.value.source == str(path)
    return info.value


def test_bad_json_names_line_and_column(tmp_path: Path) -> None:
    error = error_for(tmp_path, '{\n  "type": "record",\n  "name": "Order"\n  "fields": []\n}')
    assert f"{tmp_path / 'Order.avsc'}:4:3: invalid JSON" in str(error)


def test_unknown_type_names_the_field_path(tmp_path: Path) -> None:
    schema = record(
        {"name": "id", "type": "string"},
        {"name": "total", "type": "double"},
        {"name": "price", "type": "Money"},
    )
    error = error_for(tmp_path, schema)
    assert error.json_path == "$.fields[2].type"
    assert "unknown type 'Money' (looked up as 'com.example.Money')" in str(error)


def test_missing_name_of_a_nested_record(tmp_path: Path) -> None:
    schema = record({"name": "line", "type": {"type": "record", "fields": []}})
    error = error_for(tmp_path, schema)
    assert error.json_path == "$.fields[0].type"
    assert 'missing "name"' in error.reason


def test_default_that_does_not_fit_the_type(tmp_path: Path) -> None:
    schema = record({"name": "a", "type": "int"}, {"name": "b", "type": "int", "default": "x"})
    error = error_for(tmp_path, schema)
    assert error.json_path == "$.fields[1].default"
    assert "bad default for field 'b'" in str(error)


def test_union_default_must_match_the_first_branch(tmp_path: Path) -> None:
    schema = record({"name": "note", "type": ["null", "string"], "default": "none"})
    error = error_for(tmp_path, schema)
    assert error.json_path == "$.fields[0].default"
    assert "null" in error.reason


def test_default_out_of_int_range(tmp_path: Path) -> None:
    error = error_for(tmp_path, record({"name": "a", "type": "int", "default": 2**31}))
    assert "out of range for int" in error.reason


def test_invalid_enum_symbol(tmp_path: Path) -> None:
    schema = {"type": "enum", "name": "Currency", "symbols": ["EUR", "US-D"]}
    error = error_for(tmp_path, schema)
    assert error.json_path == "$.symbols[1]"
    assert "'US-D'" in error.reason


def test_duplicate_enum_symbol(tmp_path: Path) -> None:
    error = error_for(tmp_path, {"type": "enum", "name": "E", "symbols": ["A", "B", "A"]})
    assert error.json_path == "$.symbols[2]"


def test_decimal_scale_greater_than_precision(tmp_path: Path) -> None:
    decimal = {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 6}
    error = error_for(tmp_path, record({"name": "price", "type": decimal}))
    assert error.json_path == "$.fields[0].type.scale"
    assert "decimal scale 6 is greater than precision 4" in str(error)


def test_fixed_decimal_precision_must_fit_its_size(tmp_path: Path) -> None:
    fixed = {"type": "fixed", "name": "F", "size": 2, "logicalType": "decimal", "precision": 5}
    error = error_for(tmp_path, record({"name": "f", "type": fixed}))
    assert error.json_path == "$.fields[0].type.precision"
    assert "(at most 4)" in error.reason


def test_duplicate_field_name(tmp_path: Path) -> None:
    schema = record({"name": "a", "type": "int"}, {"name": "a", "type": "long"})
    error = error_for(tmp_path, schema)
    assert error.json_path == "$.fields[1].name"
    assert "duplicate field name 'a' (first at $.fields[0])" in error.reason


def test_duplicate_json_key(tmp_path: Path) -> None:
    text = '{"type": "record", "name": "A", "name": "B", "fields": []}'
    error = error_for(tmp_path, text)
    assert error.json_path == "$"
    assert "duplicate key 'name'" in error.reason


def test_union_inside_union_and_repeated_branch(tmp_path: Path) -> None:
    nested = error_for(tmp_path, record({"name": "u", "type": ["null", ["int", "long"]]}))
    assert nested.json_path == "$.fields[0].type[1]"
    repeated = error_for(tmp_path, record({"name": "u", "type": ["null", "int", "null"]}))
    assert repeated.json_path == "$.fields[0].type[2]"
    assert "already has a null branch at $.fields[0].type[0]" in repeated.reason


def test_logical_type_on_the_wrong_type(tmp_path: Path) -> None:
    error = error_for(
        tmp_path, record({"name": "d", "type": {"type": "string", "logicalType": "date"}})
    )
    assert error.json_path == "$.fields[0].type.logicalType"
    assert "needs type int" in error.reason


def test_type_defined_twice(tmp_path: Path) -> None:
    enum = {"type": "enum", "name": "E", "symbols": ["A"]}
    error = error_for(tmp_path, record({"name": "a", "type": enum}, {"name": "b", "type": enum}))
    assert error.json_path == "$.fields[1].type.name"
    assert "com.example.E is already defined at $.fields[0].type" in error.reason


def test_invalid_field_name_and_namespace(tmp_path: Path) -> None:
    assert (
        error_for(tmp_path, record({"name": "a-b", "type": "int"})).json_path == "$.fields[0].name"
    )
    bad_namespace = {"type": "fixed", "name": "F", "namespace": "a..b", "size": 1}
    assert error_for(tmp_path, bad_namespace).json_path == "$.namespace"


def test_unknown_logical_types_are_kept() -> None:
    schema = {"type": "string", "logicalType": "iso-datetime"}
    assert normalize(schema) == schema


def test_text_and_dict_sources_are_named_schema() -> None:
    with pytest.raises(SchemaParseError, match=r"^<schema>: \$: missing \"type\""):
        parse_avsc("{}")
    with pytest.raises(SchemaParseError, match=r"^<schema>: \$\.fields\[0\]: missing \"type\""):
        parse_avsc(record({"name": "a"}))


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(SchemaParseError, match="cannot read the file"):
        parse_avsc(tmp_path / "missing.avsc")


# -- normal forms --------------------------------------------------------------------------------

SPELLING_A = {
    "type": "record",
    "name": "Order",
    "namespace": "com.example",
    "doc": "An order.",
    "fields": [
        {"name": "id", "type": {"type": "string"}},
        {"name": "amount", "type": "double", "default": 1},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW"]}},
        {"name": "previous", "type": ["null", "Status"], "default": None, "order": "ascending"},
    ],
}
SPELLING_B = {
    "fields": [
        {"type": "string", "name": "id"},
        {"default": 1.0, "type": "double", "name": "amount"},
        {
            "name": "status",
            "type": {"symbols": ["NEW"], "name": "com.example.Status", "type": "enum"},
        },
        {"name": "previous", "type": ["null", "com.example.Status"], "default": None},
    ],
    "doc": "An order.",
    "name": "com.example.Order",
    "type": "record",
}


def test_normalized_json_ignores_spelling_but_keeps_docs_and_defaults() -> None:
    text = normalized_json(SPELLING_A)
    assert text == normalized_json(SPELLING_B)
    assert text == normalized_json(json.dumps(SPELLING_B, indent=4))
    assert '"doc":"An order."' in text
    assert '"default":1.0' in text
    assert '"name":"com.example.Status"' in text


def test_canonical_form_follows_the_specification() -> None:
    expected = (
        '{"name":"com.example.Order","type":"record","fields":['
        '{"name":"id","type":"string"},'
        '{"name":"amount","type":"double"},'
        '{"name":"status","type":{"name":"com.example.Status","type":"enum","symbols":["NEW"]}},'
        '{"name":"previous","type":["null","com.example.Status"]}]}'
    )
    assert canonical_form(SPELLING_A) == expected
    assert canonical_form(SPELLING_B) == expected
    assert canonical_form('{"type": "int"}') == '"int"'
    assert canonical_form(
        {"type": "map", "values": {"type": "long", "logicalType": "time-micros"}}
    ) == ('{"type":"map","values":"long"}')


def test_canonical_form_where_apache_avro_python_gets_it_wrong() -> None:
    schema = record(
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 4}},
        {"name": "f", "type": {"type": "fixed", "name": "F", "namespace": "c", "size": 4}},
        {"name": "m", "type": {"type": "map", "values": "c.F"}},
    )
    ours = canonical_form(schema)
    assert '{"name":"price","type":"bytes"}' in ours
    assert '{"name":"m","type":{"type":"map","values":"c.F"}}' in ours
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # avro warns about logical types it ignores
        theirs = avro.schema.parse(json.dumps(schema)).canonical_form
    assert theirs != ours  # why canonical_form() does not delegate to the avro package
