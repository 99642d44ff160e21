"""The catalogue: files by namespace, references across files, dependency order, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastavro
import pytest

from eventplatform.errors import SchemaError, SchemaParseError
from eventplatform.schema import load_catalogue

SAMPLE = Path(__file__).resolve().parents[3] / "schemas"


def put(root: Path, relative: str, schema: dict[str, Any]) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema))
    return path


def enum(name: str, namespace: str | None = "com.acme") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "enum", "name": name, "symbols": ["A", "B"]}
    if namespace:
        schema["namespace"] = namespace
    return schema


def record(name: str, *types: Any, namespace: str | None = "com.acme") -> dict[str, Any]:
    fields = [{"name": f"f{i}", "type": t} for i, t in enumerate(types)]
    schema: dict[str, Any] = {"type": "record", "name": name, "fields": fields}
    if namespace:
        schema["namespace"] = namespace
    return schema


def test_sample_catalogue_in_dependency_order() -> None:
    catalogue = load_catalogue(SAMPLE)
    names = [entry.full_name for entry in catalogue]
    assert sorted(names) == [
        "com.example.customers.CustomerRegistered",
        "com.example.orders.Currency",
        "com.example.orders.OrderPaid",
        "com.example.orders.OrderPlaced",
        "com.example.orders.OrderShipped",
    ]
    for entry in catalogue:
        for reference in entry.references:
            assert names.index(reference) < names.index(entry.full_name)
    placed = catalogue["com.example.orders.OrderPlaced"]
    assert placed.references == ("com.example.orders.Currency",)
    assert placed.defines == ("com.example.orders.OrderPlaced", "com.example.orders.LineItem")
    assert placed.path == SAMPLE / "com" / "example" / "orders" / "OrderPlaced.avsc"
    assert placed.schema["fields"][4]["type"] == "Currency"  # as written


def test_resolved_schemas_are_self_contained() -> None:
    catalogue = load_catalogue(SAMPLE)
    for entry in catalogue:
        fastavro.parse_schema(entry.resolved, named_schemas={})
    paid = catalogue["com.example.orders.OrderPaid"].resolved
    currency = next(field["type"] for field in paid["fields"] if field["name"] == "currency")
    assert currency["type"] == "enum"
    assert currency["symbols"] == ["EUR", "USD", "GBP"]


def test_every_sample_record_and_field_has_a_doc() -> None:
    for entry in load_catalogue(SAMPLE):
        assert entry.resolved.get("doc"), entry.full_name
        for field in entry.resolved.get("fields", ()):
            assert field.get("doc"), f"{entry.full_name}.{field['name']}"


def test_lookup_by_full_name(tmp_path: Path) -> None:
    put(tmp_path, "com/acme/Kind.avsc", enum("Kind"))
    catalogue = load_catalogue(tmp_path)
    assert len(catalogue) == 1
    assert "com.acme.Kind" in catalogue
    assert catalogue["com.acme.Kind"].kind == "enum"
    assert catalogue["com.acme.Kind"].namespace == "com.acme"
    with pytest.raises(KeyError):
        catalogue["com.acme.Other"]


def test_file_path_must_match_namespace_and_name(tmp_path: Path) -> None:
    path = put(tmp_path, "com/Kind.avsc", enum("Kind"))
    with pytest.raises(SchemaParseError) as info:
        load_catalogue(tmp_path)
    assert str(path) in str(info.value)
    assert f"belongs at {tmp_path / 'com' / 'acme' / 'Kind.avsc'}" in str(info.value)


def test_unknown_reference_names_file_and_path(tmp_path: Path) -> None:
    path = put(tmp_path, "com/acme/Order.avsc", record("Order", "string", "Missing"))
    with pytest.raises(SchemaParseError) as info:
        load_catalogue(tmp_path)
    assert str(info.value).startswith(f"{path}: $.fields[1].type: unknown type 'com.acme.Missing'")


def test_reference_cycle_names_the_files(tmp_path: Path) -> None:
    put(tmp_path, "com/acme/A.avsc", record("A", "B"))
    put(tmp_path, "com/acme/B.avsc", record("B", "A"))
    with pytest.raises(SchemaParseError, match=r"reference cycle com\.acme\.A -> com\.acme\.B -> "
                       r"com\.acme\.A \(files com/acme/A\.avsc, com/acme/B\.avsc\)"):  # fmt: skip
        load_catalogue(tmp_path)


def test_type_defined_in_two_files(tmp_path: Path) -> None:
    put(tmp_path, "com/acme/Kind.avsc", enum("Kind"))
    put(tmp_path, "com/acme/Order.avsc", record("Order", enum("Kind")))
    with pytest.raises(
        SchemaParseError, match=r"com\.acme\.Kind is already defined in .*Kind\.avsc"
    ):
        load_catalogue(tmp_path)


def test_use_before_definition_in_one_file(tmp_path: Path) -> None:
    put(tmp_path, "com/acme/Order.avsc", record("Order", "Kind", enum("Kind")))
    with pytest.raises(
        SchemaParseError, match=r"\$\.fields\[0\]\.type: com\.acme\.Kind is used before"
    ):
        load_catalogue(tmp_path)


def test_top_level_must_be_a_named_type(tmp_path: Path) -> None:
    put(tmp_path, "Strings.avsc", {"type": "array", "items": "string"})
    with pytest.raises(SchemaParseError, match="defines one record, enum or fixed"):
        load_catalogue(tmp_path)


def test_invalid_file_is_reported_with_its_path(tmp_path: Path) -> None:
    path = put(tmp_path, "com/acme/Order.avsc", record("Order", {"type": "map"}))
    with pytest.raises(SchemaParseError, match=rf"^{path}: \$\.fields\[0\]\.type: a map needs"):
        load_catalogue(tmp_path)


def test_defaults_of_referenced_types_are_checked_once_resolved(tmp_path: Path) -> None:
    put(tmp_path, "com/acme/Kind.avsc", enum("Kind"))
    order = record("Order")
    order["fields"] = [{"name": "kind", "type": "Kind", "default": "C"}]
    put(tmp_path, "com/acme/Order.avsc", order)
    with pytest.raises(SchemaParseError, match=r"\$\.fields\[0\]\.default: bad default.*'C'"):
        load_catalogue(tmp_path)


def test_references_across_namespaces_and_to_nested_types(tmp_path: Path) -> None:
    put(tmp_path, "Root.avsc", enum("Root", namespace=None))
    put(tmp_path, "com/acme/Holder.avsc", record("Holder", record("Inner", "string")))
    put(tmp_path, "org/other/User.avsc", record("User", "com.acme.Inner", namespace="org.other"))
    put(tmp_path, "Top.avsc", record("Top", "Root", "org.other.User", namespace=None))
    catalogue = load_catalogue(tmp_path)
    assert catalogue["org.other.User"].references == ("com.acme.Holder",)
    top = catalogue["Top"]
    assert top.references == ("Root", "org.other.User")
    user = top.resolved["fields"][1]["type"]
    assert user["fields"][0]["type"]["name"] == "com.acme.Inner"
    fastavro.parse_schema(top.resolved, named_schemas={})


def test_null_namespace_types_cannot_be_named_from_a_namespace(tmp_path: Path) -> None:
    # Avro spec, "Names": an unqualified reference takes the enclosing namespace.
    put(tmp_path, "Root.avsc", enum("Root", namespace=None))
    put(tmp_path, "com/acme/User.avsc", record("User", "Root"))
    with pytest.raises(SchemaParseError, match=r"unknown type 'com\.acme\.Root'"):
        load_catalogue(tmp_path)


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="not a directory"):
        load_catalogue(tmp_path / "nowhere")
