"""Parsing registry input: validation with reasons, references, and schema identity."""

from __future__ import annotations

import json
from typing import Any

import pytest

from eventplatform.errors import InvalidSchema, VersionNotFound
from eventplatform.registry.base import Schema, SchemaReference
from eventplatform.registry.parsing import ParsedSchema, parse_schema, resolution_form

ORDER: dict[str, Any] = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "doc": "An order.",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "amount", "type": "double", "default": 0.0},
    ],
}

ADDRESS: dict[str, Any] = {
    "type": "record",
    "name": "Address",
    "namespace": "shop",
    "fields": [{"name": "city", "type": "string"}],
}


def parse(document: Any, **kwargs: Any) -> ParsedSchema:
    return parse_schema(json.dumps(document), **kwargs)


def resolver(schemas: dict[tuple[str, int], Schema]) -> Any:
    def resolve(ref: SchemaReference) -> Schema:
        try:
            return schemas[(ref.subject, ref.version)]
        except KeyError:
            raise VersionNotFound(f"{ref.subject} has no version {ref.version}") from None

    return resolve


def test_stored_text_is_compact_and_keeps_content() -> None:
    parsed = parse_schema(json.dumps(ORDER, indent=4))
    assert parsed.text == json.dumps(ORDER, separators=(",", ":"))


def test_layout_and_key_order_do_not_change_identity() -> None:
    reordered = {key: ORDER[key] for key in reversed(list(ORDER))}
    a = parse_schema(json.dumps(ORDER))
    b = parse_schema(json.dumps(reordered, indent=2))
    assert a.fingerprint == b.fingerprint
    assert a.normalized_fingerprint == b.normalized_fingerprint


def test_docs_are_ignored_only_when_normalizing() -> None:
    a = parse(ORDER)
    b = parse({**ORDER, "doc": "Something else entirely."})
    assert a.identity(normalize=True) == b.identity(normalize=True)
    assert a.identity(normalize=False) != b.identity(normalize=False)


def test_namespace_spelling_does_not_change_normalized_identity() -> None:
    inline = {**ORDER, "name": "shop.Order"}
    del inline["namespace"]
    assert parse(inline).normalized_fingerprint == parse(ORDER).normalized_fingerprint


@pytest.mark.parametrize(
    "field",
    [
        {"name": "amount", "type": "double", "default": 1.5},
        {"name": "amount", "type": "double"},
        {"name": "amount", "type": "double", "default": 0.0, "aliases": ["total"]},
        {"name": "amount", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
    ids=["default-changed", "default-removed", "alias-added", "logical-type"],
)
def test_resolution_attributes_change_normalized_identity(field: dict[str, Any]) -> None:
    changed = {**ORDER, "fields": [ORDER["fields"][0], field]}
    assert parse(changed).normalized_fingerprint != parse(ORDER).normalized_fingerprint


def test_unknown_logical_type_falls_back_to_its_type_without_warning() -> None:
    # Avro specification: an unknown logical type is ignored. Warnings are errors here.
    parsed = parse({"type": "long", "logicalType": "local-timestamp-millis"})
    assert parsed.avro.type == "long"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"type": "record", "name": "R", "fields": [', "not valid JSON"),
        ('{"type": "record", "name": "R", "fields": [{"name": "a", "type": "nope"}]}', "nope"),
        ('{"type": "record", "fields": []}', "invalid Avro schema"),
        ('{"type": "enum", "name": "E", "symbols": ["A", "A"]}', "invalid Avro schema"),
        (
            '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int", '
            '"default": "x"}]}',
            "Default value <x> must match schema type: int",
        ),
    ],
    ids=[
        "truncated-json",
        "unknown-type",
        "record-without-name",
        "duplicate-symbol",
        "bad-default",
    ],
)
def test_invalid_schema_is_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidSchema, match=reason):
        parse_schema(text)


def test_json_errors_name_line_and_column() -> None:
    with pytest.raises(InvalidSchema, match=r"at line 2 column \d+"):
        parse_schema('{"type": "record",\n "name": }')


def test_only_avro_is_supported() -> None:
    with pytest.raises(InvalidSchema, match="only AVRO"):
        parse_schema('"string"', schema_type="PROTOBUF")


def test_references_resolve_named_types() -> None:
    customer = {
        "type": "record",
        "name": "Customer",
        "namespace": "shop",
        "fields": [{"name": "home", "type": "shop.Address"}],
    }
    ref = SchemaReference(name="shop.Address", subject="address", version=1)
    parsed = parse(
        customer,
        references=(ref,),
        resolve=resolver({("address", 1): Schema(json.dumps(ADDRESS))}),
    )
    assert parsed.references == (ref,)
    # The referenced type is part of the schema, in full, at its first use.
    form = resolution_form(parsed.avro)
    assert form["fields"][0]["type"]["name"] == "shop.Address"
    assert form["fields"][0]["type"]["fields"] == [{"name": "city", "type": "string"}]


def test_nested_references_resolve_depth_first() -> None:
    customer = {
        "type": "record",
        "name": "Customer",
        "namespace": "shop",
        "fields": [{"name": "home", "type": "shop.Address"}],
    }
    order = {
        "type": "record",
        "name": "Order",
        "namespace": "shop",
        "fields": [{"name": "buyer", "type": "shop.Customer"}],
    }
    address_ref = SchemaReference(name="shop.Address", subject="address", version=1)
    schemas = {
        ("address", 1): Schema(json.dumps(ADDRESS)),
        ("customer", 1): Schema(json.dumps(customer), references=(address_ref,)),
    }
    parsed = parse(
        order,
        references=(SchemaReference(name="shop.Customer", subject="customer", version=1),),
        resolve=resolver(schemas),
    )
    buyer = resolution_form(parsed.avro)["fields"][0]["type"]
    assert buyer["fields"][0]["type"]["name"] == "shop.Address"


def test_unknown_reference_is_an_invalid_schema() -> None:
    ref = SchemaReference(name="shop.Address", subject="address", version=7)
    with pytest.raises(InvalidSchema, match=r"reference 'shop.Address' .* cannot be resolved"):
        parse({"type": "array", "items": "shop.Address"}, references=(ref,), resolve=resolver({}))


def test_reference_must_define_the_type_it_is_named_after() -> None:
    ref = SchemaReference(name="shop.Place", subject="address", version=1)
    with pytest.raises(InvalidSchema, match=r"does not define a type named 'shop\.Place'"):
        parse(
            {"type": "array", "items": "shop.Address"},
            references=(ref,),
            resolve=resolver({("address", 1): Schema(json.dumps(ADDRESS))}),
        )


def test_reference_cycle_is_refused() -> None:
    a = SchemaReference(name="x.A", subject="a", version=1)
    b = SchemaReference(name="x.B", subject="b", version=1)
    schemas = {("a", 1): Schema('"string"', references=(b,)), ("b", 1): Schema('"int"', (a,))}
    with pytest.raises(InvalidSchema, match="cycle"):
        parse("string", references=(a,), resolve=resolver(schemas))


def test_references_are_part_of_identity() -> None:
    schemas = {
        ("address", 1): Schema(json.dumps(ADDRESS)),
        ("address", 2): Schema(json.dumps(ADDRESS)),
    }
    doc = {"type": "array", "items": "shop.Address"}
    v1 = parse(
        doc, references=(SchemaReference("shop.Address", "address", 1),), resolve=resolver(schemas)
    )
    v2 = parse(
        doc, references=(SchemaReference("shop.Address", "address", 2),), resolve=resolver(schemas)
    )
    assert v1.fingerprint != v2.fingerprint
    assert v1.normalized_fingerprint != v2.normalized_fingerprint
