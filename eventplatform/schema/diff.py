"""A structural diff of two Avro schemas, for people: fields added, removed, retyped.

Whether one schema can read data of the other is Apache Avro's compatibility checker's verdict
(:mod:`eventplatform.registry.compatibility`); this module only says *what* changed, so that a
reviewer reads ``fields added: note (null | string, default null)`` instead of comparing two
JSON documents. Both schemas are normalised first (:func:`eventplatform.schema.normalize`:
full names, defaults in canonical JSON), so layout and namespace spelling are not changes.

Paths name fields from the top-level record down: ``items[].unit_price`` is the field
``unit_price`` of the records in the array field ``items``; map values add ``{}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from eventplatform.errors import SchemaError
from eventplatform.schema.avsc import normalize

__all__ = ["SchemaChange", "describe", "diff_schemas", "summarize"]

_NAMED = ("record", "enum", "fixed")
ChangeKind = Literal["added", "removed", "changed"]


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """One difference between two schemas.

    Attributes:
        kind: ``added``, ``removed`` or ``changed``.
        what: what changed: ``field``, ``type``, ``default``, ``symbol``, ``alias``, ``doc``,
            ``name`` or ``size``.
        path: where, e.g. ``items[].quantity`` (empty for the top-level type).
        detail: the change in words, without the path.
        brief: the change in as few words as a one-line summary needs.
    """

    kind: ChangeKind
    what: str
    path: str
    detail: str
    brief: str = ""

    def __str__(self) -> str:
        where = self.path or "(top level)"
        return f"{where}: {self.detail}"


def _load(schema: Any) -> Any:
    try:
        return normalize(schema)
    except SchemaError:
        # A schema registered by another tool may use something the catalogue's validator
        # refuses (and the registry accepted); its plain JSON still diffs usefully.
        return json.loads(schema) if isinstance(schema, str) else schema


def _definitions(schema: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for branch in node:
                walk(branch)
        elif isinstance(node, dict):
            if node.get("type") in _NAMED and isinstance(node.get("name"), str):
                found.setdefault(node["name"], node)
            for field in node.get("fields", ()):
                walk(field.get("type"))
            for key in ("items", "values"):
                if key in node:
                    walk(node[key])

    walk(schema)
    return found


def _short(name: str) -> str:
    return name.rpartition(".")[2]


def describe(node: Any, definitions: Mapping[str, Any] | None = None) -> str:
    """A schema node in a few words: ``int``, ``string (uuid)``, ``decimal(10,2) on bytes``,
    ``array<record LineItem>``, ``null | string``."""
    if isinstance(node, str) and definitions and node in definitions:
        node = definitions[node]
    if isinstance(node, list):
        return " | ".join(describe(branch, definitions) for branch in node)
    if isinstance(node, str):
        return node
    if not isinstance(node, dict):
        return json.dumps(node)
    kind = node.get("type")
    logical = node.get("logicalType")
    if logical == "decimal":
        base = f"fixed({node.get('size')})" if kind == "fixed" else "bytes"
        return f"decimal({node.get('precision')},{node.get('scale', 0)}) on {base}"
    if kind == "array":
        return f"array<{describe(node.get('items'), definitions)}>"
    if kind == "map":
        return f"map<{describe(node.get('values'), definitions)}>"
    if kind in _NAMED:
        size = f"({node.get('size')})" if kind == "fixed" else ""
        return f"{kind} {_short(str(node.get('name')))}{size}"
    if isinstance(kind, dict | list):
        return describe(kind, definitions)
    return f"{kind} ({logical})" if logical else str(kind)


def _kind(node: Any) -> str:
    if isinstance(node, list):
        return "union"
    if isinstance(node, dict):
        return str(node.get("type"))
    return str(node)


def _logical(node: Mapping[str, Any]) -> tuple[Any, ...]:
    return (node.get("logicalType"), node.get("precision"), node.get("scale"))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Differ:
    def __init__(self, old: Any, new: Any) -> None:
        self.old_defs = _definitions(old)
        self.new_defs = _definitions(new)
        self.changes: list[SchemaChange] = []
        self.seen: set[tuple[str, str]] = set()

    def add(self, kind: ChangeKind, what: str, path: str, detail: str, brief: str = "") -> None:
        self.changes.append(SchemaChange(kind, what, path, detail, brief))

    def old_text(self, node: Any) -> str:
        return describe(node, self.old_defs)

    def new_text(self, node: Any) -> str:
        return describe(node, self.new_defs)

    def resolve(self, node: Any, definitions: Mapping[str, Any]) -> Any:
        if isinstance(node, str) and node in definitions:
            return definitions[node]
        return node

    def retyped(self, path: str, old: Any, new: Any) -> None:
        change = f"{self.old_text(old)} → {self.new_text(new)}"
        self.add("changed", "type", path, f"type {change}", change)

    def compare(self, old: Any, new: Any, path: str) -> None:
        old = self.resolve(old, self.old_defs)
        new = self.resolve(new, self.new_defs)
        old_kind, new_kind = _kind(old), _kind(new)
        if old_kind == "union" or new_kind == "union":
            self.unions(old, new, path)
        elif old_kind != new_kind:
            self.retyped(path, old, new)
        elif old_kind in _NAMED:
            self.named(old, new, path)
        elif old_kind == "array":
            self.compare(old["items"], new["items"], f"{path}[]")
        elif old_kind == "map":
            self.compare(old["values"], new["values"], f"{path}{{}}")
        elif self.old_text(old) != self.new_text(new):
            self.retyped(path, old, new)

    def unions(self, old: Any, new: Any, path: str) -> None:
        old_branches = old if isinstance(old, list) else [old]
        new_branches = new if isinstance(new, list) else [new]
        old_keys = {self.old_text(b): b for b in old_branches}
        new_keys = {self.new_text(b): b for b in new_branches}
        if not isinstance(old, list) or not isinstance(new, list):
            shorter = old_keys if isinstance(new, list) else new_keys
            longer = new_keys if isinstance(new, list) else old_keys
            if set(shorter) <= set(longer) and set(longer) - set(shorter) == {"null"}:
                became = "optional (null | …)" if isinstance(new, list) else "required"
                self.add("changed", "type", path, f"became {became}", f"became {became}")
                return
            if not (set(shorter) & set(longer)):
                self.retyped(path, old, new)
                return
        # In branch order, not set order, so that the same change always reads the same.
        for key in old_keys:
            if key not in new_keys:
                self.add("removed", "type", path, f"union branch {key} removed", key)
        for key in new_keys:
            if key not in old_keys:
                self.add("added", "type", path, f"union branch {key} added", key)
        for key, branch in old_keys.items():
            if key in new_keys:
                self.compare(branch, new_keys[key], path)

    def named(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        pair = (str(old.get("name")), str(new.get("name")))
        if pair in self.seen:
            return  # a recursive type, or one used twice: compared at its first use
        self.seen.add(pair)
        if pair[0] != pair[1]:
            renamed = f"{pair[0]} → {pair[1]}"
            self.add("changed", "name", path, f"type renamed {renamed}", renamed)
        self.attributes(old, new, path)
        kind = old["type"]
        if kind == "record":
            self.fields(old.get("fields", []), new.get("fields", []), path)
        elif kind == "enum":
            old_symbols, new_symbols = old.get("symbols", []), new.get("symbols", [])
            for symbol in old_symbols:
                if symbol not in new_symbols:
                    self.add("removed", "symbol", path, f"enum symbol {symbol} removed", symbol)
            for symbol in new_symbols:
                if symbol not in old_symbols:
                    self.add("added", "symbol", path, f"enum symbol {symbol} added", symbol)
            if old.get("default") != new.get("default"):
                change = f"{old.get('default')} → {new.get('default')}"
                self.add("changed", "default", path, f"enum default {change}", change)
        else:
            if old.get("size") != new.get("size"):
                change = f"{old.get('size')} → {new.get('size')}"
                self.add("changed", "size", path, f"size {change}", change)
            if _logical(old) != _logical(new):
                self.retyped(path, old, new)

    def attributes(self, old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> None:
        old_aliases, new_aliases = set(old.get("aliases", ())), set(new.get("aliases", ()))
        for alias in sorted(new_aliases - old_aliases):
            self.add("added", "alias", path, f"alias {alias} added", alias)
        for alias in sorted(old_aliases - new_aliases):
            self.add("removed", "alias", path, f"alias {alias} removed", alias)
        if old.get("doc") != new.get("doc"):
            self.add("changed", "doc", path, "doc changed")

    def fields(
        self, old_fields: list[dict[str, Any]], new_fields: list[dict[str, Any]], path: str
    ) -> None:
        old_by_name = {f["name"]: f for f in old_fields}
        new_by_name = {f["name"]: f for f in new_fields}
        renamed: dict[str, str] = {}  # old name -> new name, through the new field's aliases
        for field in new_fields:
            if field["name"] in old_by_name:
                continue
            for alias in field.get("aliases", ()):
                if alias in old_by_name and alias not in new_by_name:
                    renamed[alias] = field["name"]
                    break
        for field in old_fields:
            name = field["name"]
            if name in renamed:
                target = renamed[name]
                self.add("changed", "name", _join(path, target), f"field renamed from {name}", name)
                self.field(field, new_by_name[target], _join(path, target))
            elif name not in new_by_name:
                self.add("removed", "field", _join(path, name), f"field {name} removed")
        targets = set(renamed.values())
        for field in new_fields:
            name = field["name"]
            if name in old_by_name:
                self.field(old_by_name[name], field, _join(path, name))
            elif name not in targets:
                default = (
                    f", default {json.dumps(field['default'])}"
                    if "default" in field
                    else ", no default"
                )
                what = f"{self.new_text(field['type'])}{default}"
                self.add("added", "field", _join(path, name), f"field {name} added ({what})", what)

    def field(self, old: dict[str, Any], new: dict[str, Any], path: str) -> None:
        self.compare(old["type"], new["type"], path)
        if old.get("default", ...) != new.get("default", ...):
            if "default" not in old:
                change = f"{json.dumps(new['default'])} added"
            elif "default" not in new:
                change = f"{json.dumps(old['default'])} removed"
            else:
                change = f"{json.dumps(old['default'])} → {json.dumps(new['default'])}"
            self.add("changed", "default", path, f"default {change}", change)
        self.attributes(old, new, path)


def diff_schemas(old: Any, new: Any) -> list[SchemaChange]:
    """What changed from ``old`` to ``new`` (decoded JSON or JSON text), in schema order.

    Schemas that are not valid for the catalogue's validator are compared as plain JSON.
    """
    old_schema, new_schema = _load(old), _load(new)
    differ = _Differ(old_schema, new_schema)
    differ.compare(old_schema, new_schema, "")
    return differ.changes


_SUMMARY_GROUPS: tuple[tuple[str, ChangeKind, str], ...] = (
    ("field", "added", "fields added"),
    ("field", "removed", "fields removed"),
    ("name", "changed", "renamed"),
    ("type", "changed", "type changed"),
    ("type", "added", "union branches added"),
    ("type", "removed", "union branches removed"),
    ("symbol", "added", "symbols added"),
    ("symbol", "removed", "symbols removed"),
    ("default", "changed", "defaults changed"),
    ("size", "changed", "size changed"),
    ("alias", "added", "aliases added"),
    ("alias", "removed", "aliases removed"),
    ("doc", "changed", "docs changed"),
)


def _item(change: SchemaChange) -> str:
    where = change.path or "top level"
    if (
        not change.brief
        or change.what == "doc"
        or (change.kind == "removed" and change.what == "field")
    ):
        return where
    return f"{where} ({change.brief})"


def summarize(changes: Iterable[SchemaChange]) -> str:
    """One line: ``fields added: note (…); type changed: total (type int → long)``."""
    changes = list(changes)
    if not changes:
        return "no structural change"
    parts = []
    for what, kind, label in _SUMMARY_GROUPS:
        items = [_item(c) for c in changes if c.what == what and c.kind == kind]
        if items:
            parts.append(f"{label}: {', '.join(items)}")
    return "; ".join(parts)
