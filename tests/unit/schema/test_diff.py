"""The structural diff behind ``register``'s change column and ``schemas diff``."""

from __future__ import annotations

import copy
import json
from typing import Any

from eventplatform.schema.diff import SchemaChange, diff_schemas, summarize

BASE: dict[str, Any] = {
    "type": "record",
    "name": "Order",
    "namespace": "com.acme",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "quantity", "type": "int"},
        {
            "name": "lines",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Line",
                    "fields": [{"name": "sku", "type": "string"}],
                },
            },
        },
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "DONE"]}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 16}},
    ],
}


def changed(mutate: Any) -> list[str]:
    new = copy.deepcopy(BASE)
    mutate(new)
    return [str(change) for change in diff_schemas(BASE, new)]


def field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def test_identical_schemas_in_different_layouts_have_no_changes() -> None:
    relaid = json.dumps(BASE, indent=4, sort_keys=True)

    assert diff_schemas(BASE, relaid) == []
    assert summarize([]) == "no structural change"


def test_added_and_removed_fields() -> None:
    def mutate(schema: dict[str, Any]) -> None:
        schema["fields"].pop(0)
        schema["fields"].append({"name": "channel", "type": "string", "default": "web"})

    assert changed(mutate) == [
        "id: field id removed",
        'channel: field channel added (string, default "web")',
    ]


def test_a_retyped_field_and_a_nested_field() -> None:
    def mutate(schema: dict[str, Any]) -> None:
        field(schema, "quantity")["type"] = "long"
        field(schema, "lines")["type"]["items"]["fields"].append({"name": "qty", "type": "int"})

    assert changed(mutate) == [
        "quantity: type int → long",
        "lines[].qty: field qty added (int, no default)",
    ]


def test_optional_and_required() -> None:
    def mutate(schema: dict[str, Any]) -> None:
        field(schema, "id")["type"] = ["null", "string"]
        field(schema, "id")["default"] = None
        field(schema, "note").pop("default")
        field(schema, "note")["type"] = "string"

    assert changed(mutate) == [
        "id: became optional (null | …)",
        "id: default null added",
        "note: became required",
        "note: default null removed",
    ]


def test_a_field_renamed_through_an_alias() -> None:
    def mutate(schema: dict[str, Any]) -> None:
        field(schema, "note").update(name="comment", aliases=["note"])

    assert changed(mutate) == [
        "comment: field renamed from note",
        "comment: alias note added",
    ]


def test_enum_symbols_fixed_size_and_union_branches() -> None:
    def mutate(schema: dict[str, Any]) -> None:
        field(schema, "status")["type"]["symbols"] = ["NEW", "SHIPPED"]
        field(schema, "hash")["type"]["size"] = 32
        field(schema, "note")["type"] = ["null", "string", "int"]

    assert changed(mutate) == [
        "status: enum symbol DONE removed",
        "status: enum symbol SHIPPED added",
        "note: union branch int added",
        "hash: size 16 → 32",
    ]


def test_a_recursive_type_is_compared_once() -> None:
    node: dict[str, Any] = {
        "type": "record",
        "name": "Node",
        "fields": [{"name": "next", "type": ["null", "Node"], "default": None}],
    }
    grown = copy.deepcopy(node)
    grown["fields"].append({"name": "value", "type": "int", "default": 0})

    assert [str(c) for c in diff_schemas(node, grown)] == [
        "value: field value added (int, default 0)"
    ]


def test_summary_groups_changes_in_one_line() -> None:
    changes = [
        SchemaChange(
            "added",
            "field",
            "coupon",
            "field coupon added (string, no default)",
            "string, no default",
        ),
        SchemaChange("removed", "field", "note", "field note removed"),
        SchemaChange("changed", "type", "total", "type int → long", "int → long"),
    ]

    assert summarize(changes) == (
        "fields added: coupon (string, no default); fields removed: note; "
        "type changed: total (int → long)"
    )
