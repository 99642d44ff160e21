"""Does a Python event class still say what its ``.avsc`` contract says?

:func:`check_class_against_schema` derives the class's schema and walks it side by side with
the contract, both normalised, reporting one line per difference with the field path
(``OrderPlaced.items[].unit_price: decimal differs: schema decimal(10,2), class
decimal(12,2)``). It reports what changes the binary encoding or schema resolution: names,
types, optional versus required, logical types, decimal precision and scale, enum symbols,
fixed sizes, field order, defaults and aliases. Docs are not compared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from eventplatform.errors import SchemaMismatch
from eventplatform.schema.avsc import load_json
from eventplatform.schema.names import NAMED_TYPES
from eventplatform.schema.tree import SchemaTree, validate_schema
from eventplatform.schema.types import derive

__all__ = ["check_class_against_schema", "ensure_class_matches_schema"]


def _tree(schema: Mapping[str, Any] | str, source: str) -> SchemaTree:
    if isinstance(schema, str):
        schema = load_json(schema, source=source)
    return validate_schema(schema, source=source)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class _Comparison:
    def __init__(self, expected: SchemaTree, actual: SchemaTree) -> None:
        self.expected = expected.definitions
        self.actual = actual.definitions
        self.lines: list[str] = []
        self.seen: set[tuple[str, str]] = set()

    def report(self, path: str, message: str) -> None:
        self.lines.append(f"{path}: {message}")

    def resolve(self, node: Any, definitions: Mapping[str, Any]) -> Any:
        if isinstance(node, str) and node in definitions:
            return definitions[node]
        return node

    def describe(self, node: Any, definitions: Mapping[str, Any]) -> str:
        node = self.resolve(node, definitions)
        if isinstance(node, list):
            return " | ".join(self.describe(branch, definitions) for branch in node)
        if isinstance(node, str):
            return node
        kind = node["type"]
        logical = node.get("logicalType")
        if logical == "decimal":
            base = f"fixed {node['name']}({node['size']})" if kind == "fixed" else "bytes"
            return f"decimal({node['precision']},{node['scale']}) on {base}"
        if kind == "array":
            return f"array<{self.describe(node['items'], definitions)}>"
        if kind == "map":
            return f"map<{self.describe(node['values'], definitions)}>"
        if kind == "fixed":
            return f"fixed {node['name']}({node['size']})"
        if kind in NAMED_TYPES:
            return f"{kind} {node['name']}"
        return f"{kind} ({logical})" if logical else str(kind)

    @staticmethod
    def kind(node: Any) -> str:
        if isinstance(node, list):
            return "union"
        return str(node if isinstance(node, str) else node["type"])

    def key(self, node: Any, definitions: Mapping[str, Any]) -> str:
        node = self.resolve(node, definitions)
        kind = self.kind(node)
        return str(node["name"]) if kind in NAMED_TYPES else kind

    def compare(self, expected: Any, actual: Any, path: str) -> None:
        expected = self.resolve(expected, self.expected)
        actual = self.resolve(actual, self.actual)
        if isinstance(expected, list) or isinstance(actual, list):
            self.compare_unions(expected, actual, path)
            return
        e_kind, a_kind = self.kind(expected), self.kind(actual)
        e_desc = self.describe(expected, self.expected)
        a_desc = self.describe(actual, self.actual)
        if e_kind != a_kind:
            self.report(path, f"type differs: schema {e_desc}, class {a_desc}")
            return
        e_logical = expected.get("logicalType") if isinstance(expected, dict) else None
        a_logical = actual.get("logicalType") if isinstance(actual, dict) else None
        if e_logical != a_logical:
            self.report(
                path,
                f"logical type differs: schema {e_logical or 'none'} ({e_desc}), "
                f"class {a_logical or 'none'} ({a_desc})",
            )
        elif e_logical == "decimal" and (
            (expected["precision"], expected["scale"]) != (actual["precision"], actual["scale"])
        ):
            self.report(path, f"decimal differs: schema {e_desc}, class {a_desc}")
        if e_kind in NAMED_TYPES:
            self.compare_named(expected, actual, path)
        elif e_kind == "array":
            self.compare(expected["items"], actual["items"], f"{path}[]")
        elif e_kind == "map":
            self.compare(expected["values"], actual["values"], f"{path}{{}}")

    def compare_unions(self, expected: Any, actual: Any, path: str) -> None:
        e_branches = expected if isinstance(expected, list) else [expected]
        a_branches = actual if isinstance(actual, list) else [actual]
        e_desc = self.describe(expected, self.expected)
        a_desc = self.describe(actual, self.actual)
        e_keys = [self.key(b, self.expected) for b in e_branches]
        a_keys = [self.key(b, self.actual) for b in a_branches]
        e_rest = [b for b, k in zip(e_branches, e_keys, strict=True) if k != "null"]
        a_rest = [b for b, k in zip(a_branches, a_keys, strict=True) if k != "null"]
        if ("null" in e_keys) != ("null" in a_keys) and len(e_rest) == len(a_rest) == 1:
            if "null" in e_keys:
                self.report(
                    path, f"optional in the schema ({e_desc}), required in the class ({a_desc})"
                )
            else:
                self.report(
                    path, f"required in the schema ({e_desc}), optional in the class ({a_desc})"
                )
            self.compare(e_rest[0], a_rest[0], path)
            return
        if sorted(e_keys) != sorted(a_keys):
            self.report(path, f"union branches differ: schema {e_desc}, class {a_desc}")
            return
        if e_keys != a_keys:
            self.report(path, f"union branch order differs: schema {e_desc}, class {a_desc}")
        by_key = dict(zip(a_keys, a_branches, strict=True))
        for key, branch in zip(e_keys, e_branches, strict=True):
            self.compare(branch, by_key[key], path)

    def compare_named(
        self, expected: Mapping[str, Any], actual: Mapping[str, Any], path: str
    ) -> None:
        kind = expected["type"]
        if expected["name"] != actual["name"]:
            self.report(
                path, f"{kind} name differs: schema {expected['name']}, class {actual['name']}"
            )
        if (expected["name"], actual["name"]) in self.seen:
            return
        self.seen.add((expected["name"], actual["name"]))
        if expected.get("aliases", []) != actual.get("aliases", []):
            self.report(
                path,
                f"{kind} aliases differ: schema {expected.get('aliases', [])}, "
                f"class {actual.get('aliases', [])}",
            )
        if kind == "enum":
            if expected["symbols"] != actual["symbols"]:
                self.report(
                    path,
                    f"enum symbols differ: schema [{', '.join(expected['symbols'])}], "
                    f"class [{', '.join(actual['symbols'])}]",
                )
            if expected.get("default") != actual.get("default"):
                self.report(
                    path,
                    f"enum default differs: schema {expected.get('default')}, "
                    f"class {actual.get('default')}",
                )
        elif kind == "fixed":
            if expected["size"] != actual["size"]:
                self.report(
                    path, f"fixed size differs: schema {expected['size']}, class {actual['size']}"
                )
        else:
            self.compare_fields(expected, actual, path)

    def compare_fields(
        self, expected: Mapping[str, Any], actual: Mapping[str, Any], path: str
    ) -> None:
        e_fields = {f["name"]: f for f in expected["fields"]}
        a_fields = {f["name"]: f for f in actual["fields"]}
        for name in e_fields:
            if name not in a_fields:
                self.report(f"{path}.{name}", "missing in the class")
        for name in a_fields:
            if name not in e_fields:
                self.report(f"{path}.{name}", "not in the schema")
        e_order = [n for n in e_fields if n in a_fields]
        a_order = [n for n in a_fields if n in e_fields]
        if e_order != a_order:
            # Field order is the binary layout: bytes written in one order read wrong in the other
            # unless the reader resolves against the writer schema.
            self.report(
                path,
                f"field order differs: schema [{', '.join(e_order)}], class [{', '.join(a_order)}]",
            )
        for name in e_order:
            here = f"{path}.{name}"
            e_field, a_field = e_fields[name], a_fields[name]
            self.compare(e_field["type"], a_field["type"], here)
            if "default" in e_field and "default" not in a_field:
                self.report(
                    here, f"default differs: schema {_json(e_field['default'])}, class none"
                )
            elif "default" in a_field and "default" not in e_field:
                self.report(
                    here, f"default differs: schema none, class {_json(a_field['default'])}"
                )
            elif e_field.get("default") != a_field.get("default"):
                self.report(
                    here,
                    f"default differs: schema {_json(e_field['default'])}, "
                    f"class {_json(a_field['default'])}",
                )
            if e_field.get("aliases", []) != a_field.get("aliases", []):
                self.report(
                    here,
                    f"aliases differ: schema {e_field.get('aliases', [])}, "
                    f"class {a_field.get('aliases', [])}",
                )
            if e_field.get("order", "ascending") != a_field.get("order", "ascending"):
                self.report(
                    here,
                    f"sort order differs: schema {e_field.get('order', 'ascending')}, "
                    f"class {a_field.get('order', 'ascending')}",
                )


def check_class_against_schema(cls: type[BaseModel], schema: Mapping[str, Any] | str) -> list[str]:
    """Differences between an event class and its contract; empty when they agree.

    Args:
        cls: an :class:`~eventplatform.schema.AvroEvent` subclass (or any pydantic model).
        schema: the contract: a self-contained schema dict (e.g. a catalogue entry's
            ``resolved``) or its JSON text.

    Returns:
        One readable line per difference, each starting with the field path.

    Raises:
        SchemaParseError: the contract is not a valid schema.
        SchemaError: the class has no valid Avro schema.
    """
    expected = _tree(schema, "<contract>")
    actual = validate_schema(derive(cls).schema, source=f"<class {cls.__qualname__}>")
    root = (
        str(expected.schema["name"]).rpartition(".")[2]
        if isinstance(expected.schema, dict)
        else "$"
    )
    comparison = _Comparison(expected, actual)
    comparison.compare(expected.schema, actual.schema, root)
    return comparison.lines


def ensure_class_matches_schema(cls: type[BaseModel], schema: Mapping[str, Any] | str) -> None:
    """Like :func:`check_class_against_schema`, raising when there is any difference.

    Raises:
        SchemaMismatch: the class and the contract disagree; the message lists every
            difference.
        SchemaParseError: the contract is not a valid schema.
        SchemaError: the class has no valid Avro schema.
    """
    lines = check_class_against_schema(cls, schema)
    if lines:
        listing = "\n  ".join(lines)
        raise SchemaMismatch(f"{cls.__qualname__} disagrees with its schema:\n  {listing}")
