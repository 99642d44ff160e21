"""Compatibility levels over Apache Avro's checker, and the messages they produce."""

from __future__ import annotations

import json
from typing import Any

import pytest

from eventplatform.registry.base import CompatibilityLevel
from eventplatform.registry.compatibility import check_compatibility, directions, is_transitive
from eventplatform.registry.parsing import ParsedSchema, parse_schema

L = CompatibilityLevel


def record(*fields: dict[str, Any], name: str = "Order") -> ParsedSchema:
    return parse_schema(
        json.dumps({"type": "record", "name": name, "namespace": "shop", "fields": list(fields)})
    )


def field(name: str, type_: Any = "int", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def history(*schemas: ParsedSchema) -> list[tuple[int, ParsedSchema]]:
    return list(enumerate(schemas, start=1))


def test_levels_map_to_directions() -> None:
    assert directions(L.BACKWARD) == (True, False)
    assert directions(L.FORWARD_TRANSITIVE) == (False, True)
    assert directions(L.FULL) == (True, True)
    assert directions(L.NONE) == (False, False)
    assert is_transitive(L.FULL_TRANSITIVE)
    assert not is_transitive(L.FULL)


def test_no_earlier_versions_is_compatible() -> None:
    assert check_compatibility(record(field("a")), [], L.FULL_TRANSITIVE).is_compatible


def test_none_accepts_anything() -> None:
    result = check_compatibility(record(field("a", "string")), history(record(field("a"))), L.NONE)
    assert result.is_compatible


def test_backward_refuses_new_field_without_default_naming_field_rule_and_version() -> None:
    v1 = record(field("id", "string"), field("qty"), field("note", "string", default=""))
    new = record(
        field("id", "string"),
        field("qty"),
        field("note", "string", default=""),
        field("amount", "double"),
    )
    result = check_compatibility(new, [(2, v1)], L.BACKWARD)
    assert not result.is_compatible
    assert result.messages == [
        "reader field 'amount' has no default and is missing from version 2 "
        "(READER_FIELD_MISSING_DEFAULT_VALUE at /fields/3)"
    ]


def test_backward_accepts_new_field_with_default_and_removed_field() -> None:
    v1 = record(field("a"), field("b"))
    new = record(field("a"), field("c", "string", default="x"))
    assert check_compatibility(new, history(v1), L.BACKWARD).is_compatible


def test_forward_refuses_removing_a_field_the_old_reader_needs() -> None:
    v1 = record(field("a"), field("b"))
    result = check_compatibility(record(field("a")), history(v1), L.FORWARD)
    assert result.messages == [
        "reader field 'b' of version 1 has no default and is missing from the new schema "
        "(READER_FIELD_MISSING_DEFAULT_VALUE at /fields/1)"
    ]


def test_forward_accepts_adding_a_field_without_default() -> None:
    v1 = record(field("a"))
    assert check_compatibility(record(field("a"), field("b")), history(v1), L.FORWARD).is_compatible


def test_full_checks_both_directions() -> None:
    v1 = record(field("a"), field("b"))
    added = record(field("a"), field("b"), field("c"))
    removed = record(field("a"))
    with_default = record(field("a"), field("b"), field("c", default=0))
    assert (
        "READER_FIELD_MISSING_DEFAULT_VALUE at /fields/2"
        in check_compatibility(added, history(v1), L.FULL).messages[0]
    )
    assert "of version 1" in check_compatibility(removed, history(v1), L.FULL).messages[0]
    assert check_compatibility(with_default, history(v1), L.FULL).is_compatible


def test_backward_transitive_checks_every_version() -> None:
    # v2 dropped 'a'; the new schema brings 'a' back as a string: fine against v2, not v1.
    versions = history(record(field("a")), record(field("b", default=0)))
    new = record(field("a", "string", default=""), field("b", default=0))
    assert check_compatibility(new, versions, L.BACKWARD).is_compatible
    result = check_compatibility(new, versions, L.BACKWARD_TRANSITIVE)
    assert result.messages == [
        "field 'a': the new schema reads string where version 1 writes int "
        "(TYPE_MISMATCH at /fields/0/type)"
    ]


@pytest.mark.parametrize(
    ("level", "transitive"),
    [(L.FORWARD, L.FORWARD_TRANSITIVE), (L.FULL, L.FULL_TRANSITIVE)],
)
def test_forward_and_full_transitive_check_every_version(
    level: CompatibilityLevel, transitive: CompatibilityLevel
) -> None:
    # v2 gave 'a' a default, so v2 readers cope without it; v1 readers do not.
    versions = history(record(field("a")), record(field("a", default=0)))
    new = record(field("z", default=0))
    assert check_compatibility(new, versions, level).is_compatible
    result = check_compatibility(new, versions, transitive)
    assert result.messages == [
        "reader field 'a' of version 1 has no default and is missing from the new schema "
        "(READER_FIELD_MISSING_DEFAULT_VALUE at /fields/0)"
    ]


def test_every_finding_gets_its_own_message_and_location() -> None:
    old = record(
        field("id", "string"),
        field("qty"),
        field("tags", {"type": "array", "items": "string"}),
        field("state", {"type": "enum", "name": "State", "symbols": ["NEW", "PAID", "SHIPPED"]}),
        field("hash", {"type": "fixed", "name": "Hash", "size": 16}),
        field("ref", ["null", "string", "int"]),
    )
    new = record(
        field("id"),
        field("qty", "string"),
        field("tags", {"type": "array", "items": "int"}),
        field("state", {"type": "enum", "name": "State", "symbols": ["NEW"]}),
        field("hash", {"type": "fixed", "name": "Hash", "size": 8}),
        field("ref", ["null", "string"]),
        field("amount", "double"),
        field("currency", "string"),
    )
    messages = check_compatibility(new, [(4, old)], L.BACKWARD).messages
    assert sorted(messages) == sorted(
        [
            "field 'id': the new schema reads int where version 4 writes string "
            "(TYPE_MISMATCH at /fields/0/type)",
            "field 'qty': the new schema reads string where version 4 writes int "
            "(TYPE_MISMATCH at /fields/1/type)",
            "field 'tags': the new schema reads int where version 4 writes string "
            "(TYPE_MISMATCH at /fields/2/type/items)",
            "field 'state': version 4 has enum symbols PAID, SHIPPED that the new schema lacks, "
            "and the reader enum has no default (MISSING_ENUM_SYMBOLS at /fields/3/type/symbols)",
            "field 'hash': fixed type has size 8 in the new schema but 16 in version 4 "
            "(FIXED_SIZE_MISMATCH at /fields/4/type/size)",
            "field 'ref': the new schema has a union with no branch for version 4's int "
            "(MISSING_UNION_BRANCH at /fields/5/type/2)",
            "reader field 'amount' has no default and is missing from version 4 "
            "(READER_FIELD_MISSING_DEFAULT_VALUE at /fields/6)",
            "reader field 'currency' has no default and is missing from version 4 "
            "(READER_FIELD_MISSING_DEFAULT_VALUE at /fields/7)",
        ]
    )


def test_renamed_record_is_a_name_mismatch() -> None:
    old = record(field("a"))
    messages = check_compatibility(
        record(field("a"), name="Purchase"), [(1, old)], L.BACKWARD
    ).messages
    assert messages == [
        "the new schema names a type differently from 'shop.Order' in version 1 and has no "
        "alias for it (NAME_MISMATCH at /name)"
    ]


def test_alias_makes_a_rename_compatible() -> None:
    old = record(field("a"))
    renamed = parse_schema(
        json.dumps(
            {
                "type": "record",
                "name": "Purchase",
                "namespace": "shop",
                "aliases": ["shop.Order"],
                "fields": [field("a")],
            }
        )
    )
    assert check_compatibility(renamed, [(1, old)], L.BACKWARD).is_compatible


def test_enum_default_makes_removed_symbols_compatible() -> None:
    old = parse_schema(json.dumps({"type": "enum", "name": "E", "symbols": ["A", "B"]}))
    new = parse_schema(json.dumps({"type": "enum", "name": "E", "symbols": ["A"], "default": "A"}))
    assert check_compatibility(new, [(1, old)], L.BACKWARD).is_compatible


def test_promotions_follow_the_avro_specification() -> None:
    old = record(field("n"))
    assert check_compatibility(record(field("n", "long")), [(1, old)], L.BACKWARD).is_compatible
    narrowed = check_compatibility(old, [(1, record(field("n", "long")))], L.BACKWARD)
    assert narrowed.messages == [
        "field 'n': the new schema reads int where version 1 writes long "
        "(TYPE_MISMATCH at /fields/0/type)"
    ]


def test_primitive_against_union_reports_each_branch() -> None:
    old = parse_schema('["null", "string"]')
    result = check_compatibility(parse_schema('"string"'), [(1, old)], L.BACKWARD)
    assert result.messages == [
        "the new schema reads string where version 1 writes null (TYPE_MISMATCH at /)"
    ]


def test_a_missing_field_in_a_reused_named_type_is_located_by_name() -> None:
    # Avro reports the nested finding at the location where it first met the pair of types
    # (inside the union, where locations restart), so the field is found by its name instead.
    address = {"type": "record", "name": "Address", "fields": [field("city", "string")]}
    zipped = {**address, "fields": [field("city", "string"), field("zip", "string")]}

    def customer(definition: dict[str, Any]) -> ParsedSchema:
        return record(field("home", ["null", definition]), field("work", "shop.Address"))

    messages = check_compatibility(customer(zipped), [(1, customer(address))], L.BACKWARD).messages
    assert messages == [
        "field 'home': the new schema has a union with no branch for version 1's record "
        "(MISSING_UNION_BRANCH at /fields/0/type/1)",
        "reader field 'zip' has no default and is missing from version 1 "
        "(READER_FIELD_MISSING_DEFAULT_VALUE at /fields/0/type/1/fields/1)",
    ]
