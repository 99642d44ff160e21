"""Validating a decoded schema document: the rules of the specification, with JSON paths.

:func:`validate_schema` walks a schema as decoded from JSON, checks it against the Avro
specification 1.12 (https://avro.apache.org/docs/1.12.0/specification/) and reports the first
violation as a :class:`~eventplatform.errors.SchemaParseError` naming the source, the JSON path
(``$.fields[2].type``) and the reason. The walk builds the schema's normalised form on the way
(see :mod:`eventplatform.schema.avsc`), which it returns as a :class:`SchemaTree`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eventplatform.errors import SchemaParseError
from eventplatform.schema import defaults
from eventplatform.schema.names import (
    LOGICAL_TYPES,
    NAMED_TYPES,
    PRIMITIVE_TYPES,
    full_name,
    is_valid_name,
    is_valid_namespace,
    qualify,
)

__all__ = ["Lookup", "SchemaTree", "to_plain", "validate_schema"]

Lookup = Mapping[str, Mapping[str, Any]]

_FIELD_ORDERS = ("ascending", "descending", "ignore")
_KNOWN_KEYS = {
    "primitive": ("type", "logicalType"),
    "record": ("type", "name", "namespace", "doc", "aliases", "fields"),
    "enum": ("type", "name", "namespace", "doc", "aliases", "symbols", "default"),
    "fixed": ("type", "name", "namespace", "doc", "aliases", "size", "logicalType"),
    "array": ("type", "items"),
    "map": ("type", "values"),
    "field": ("name", "type", "doc", "default", "order", "aliases"),
}
_DECIMAL_KEYS = ("precision", "scale")


@dataclass(frozen=True, slots=True)
class SchemaTree:
    """A validated schema in normalised form.

    Attributes:
        schema: the normalised schema (see :mod:`eventplatform.schema.avsc`).
        definitions: full name -> normalised definition of every named type the document
            defines, in definition order.
        definition_paths: full name -> JSON path of its definition.
        references: ``(full name, JSON path)`` of each use of a named type the document does
            not define itself (one from ``named_types``, or unresolved), in document order.
    """

    schema: Any
    definitions: Mapping[str, dict[str, Any]]
    definition_paths: Mapping[str, str]
    references: tuple[tuple[str, str], ...]


def to_plain(value: Any) -> Any:
    """A deep copy of decoded JSON with plain dicts (the decoder's subclass dropped)."""
    if isinstance(value, dict):
        return {key: to_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_plain(item) for item in value]
    return value


class _Walker:
    """One validation pass over a decoded schema document."""

    def __init__(self, source: str, named_types: Lookup, allow_unresolved: bool) -> None:
        self.source = source
        self.named_types = named_types
        self.allow_unresolved = allow_unresolved
        self.definitions: dict[str, dict[str, Any]] = {}
        self.paths: dict[str, str] = {}
        self.references: list[tuple[str, str]] = []
        self.defaults: list[tuple[str, dict[str, Any]]] = []

    def error(self, path: str, reason: str) -> SchemaParseError:
        return SchemaParseError(
            f"{self.source}: {path}: {reason}", source=self.source, json_path=path, reason=reason
        )

    def lookup(self) -> dict[str, Mapping[str, Any]]:
        return {**self.named_types, **self.definitions}

    # -- dispatch -----------------------------------------------------------------------------

    def walk(self, raw: Any, path: str, namespace: str | None) -> Any:
        if isinstance(raw, str):
            return self.reference(raw, path, namespace)
        if isinstance(raw, list):
            return self.union(raw, path, namespace)
        if isinstance(raw, dict):
            return self.complex(raw, path, namespace)
        raise self.error(path, f"a schema is a type name, an object or a union array, not {raw!r}")

    def reference(self, raw: str, path: str, namespace: str | None) -> str:
        if raw in PRIMITIVE_TYPES:
            return raw
        if raw in NAMED_TYPES or raw in ("array", "map"):
            raise self.error(path, f'{raw!r} needs the object form, e.g. {{"type": "{raw}", ...}}')
        if not all(is_valid_name(part) for part in raw.split(".")):
            raise self.error(path, f"{raw!r} is not a valid type name")
        name = qualify(raw, namespace)
        if name in self.definitions:
            return name
        if name in self.named_types or self.allow_unresolved:
            self.references.append((name, path))
            return name
        looked_up = f" (looked up as {name!r})" if name != raw else ""
        raise self.error(path, f"unknown type {raw!r}{looked_up}")

    def union(self, raw: list[Any], path: str, namespace: str | None) -> list[Any]:
        if not raw:
            raise self.error(path, "a union needs at least one branch")
        branches: list[Any] = []
        seen: dict[str, int] = {}
        for index, branch in enumerate(raw):
            here = f"{path}[{index}]"
            if isinstance(branch, list):
                raise self.error(here, "a union cannot directly contain another union")
            node = self.walk(branch, here, namespace)
            key = self.branch_key(node)
            if key in seen:
                raise self.error(
                    here, f"the union already has a {key} branch at {path}[{seen[key]}]"
                )
            seen[key] = index
            branches.append(node)
        return branches

    def branch_key(self, node: Any) -> str:
        # Unions may hold one schema per type, except named types which are told apart by
        # name (specification, "Unions"); logical types do not make a type distinct.
        if isinstance(node, str):
            return node
        if node["type"] in NAMED_TYPES:
            return str(node["name"])
        return str(node["type"])

    def complex(self, raw: dict[str, Any], path: str, namespace: str | None) -> Any:
        self.check_duplicates(raw, path)
        if "type" not in raw:
            raise self.error(path, 'missing "type"')
        kind = raw["type"]
        if not isinstance(kind, str):
            raise self.error(f"{path}.type", '"type" must be a string in an object schema')
        if kind in PRIMITIVE_TYPES:
            return self.primitive(raw, path)
        if kind in NAMED_TYPES:
            return self.named(raw, path, namespace)
        if kind == "array":
            if "items" not in raw:
                raise self.error(path, 'an array needs "items"')
            items = self.walk(raw["items"], f"{path}.items", namespace)
            return {"type": "array", "items": items, **self.extras(raw, "array")}
        if kind == "map":
            if "values" not in raw:
                raise self.error(path, 'a map needs "values"')
            values = self.walk(raw["values"], f"{path}.values", namespace)
            return {"type": "map", "values": values, **self.extras(raw, "map")}
        if kind == "error":
            raise self.error(f"{path}.type", "'error' types belong to Avro protocols, not schemas")
        # {"type": "com.example.Name"} is a reference in object form (Avro Java accepts it).
        return self.reference(kind, f"{path}.type", namespace)

    def check_duplicates(self, raw: dict[str, Any], path: str) -> None:
        duplicates = getattr(raw, "duplicates", ())
        if duplicates:
            raise self.error(path, f"duplicate key {duplicates[0]!r} in the JSON object")

    @staticmethod
    def extras(raw: Mapping[str, Any], kind: str, also: tuple[str, ...] = ()) -> dict[str, Any]:
        known = _KNOWN_KEYS[kind] + also
        return {key: to_plain(raw[key]) for key in sorted(raw) if key not in known}

    # -- primitives and logical types ---------------------------------------------------------

    def primitive(self, raw: dict[str, Any], path: str) -> Any:
        kind = raw["type"]
        logical = self.logical(raw, path, kind)
        if logical is None:
            extras = self.extras(raw, "primitive")
            return {"type": kind, **extras} if extras else kind
        return {"type": kind, **logical, **self.extras(raw, "primitive", self.logical_keys(raw))}

    @staticmethod
    def logical_keys(raw: Mapping[str, Any]) -> tuple[str, ...]:
        return _DECIMAL_KEYS if raw.get("logicalType") == "decimal" else ()

    def logical(self, raw: Mapping[str, Any], path: str, kind: str) -> dict[str, Any] | None:
        if "logicalType" not in raw:
            return None
        logical = raw["logicalType"]
        if not isinstance(logical, str):
            raise self.error(f"{path}.logicalType", '"logicalType" must be a string')
        allowed = LOGICAL_TYPES.get(logical)
        # Unknown logical types are allowed and carried along (specification, "Logical Types":
        # implementations ignore those they do not know); known ones on the wrong type are
        # almost always a mistake, so they are refused instead of silently ignored.
        if allowed is not None and kind not in allowed:
            needs = " or ".join(sorted(allowed))
            raise self.error(f"{path}.logicalType", f"logicalType {logical!r} needs type {needs}")
        if logical != "decimal":
            return {"logicalType": logical}
        precision = raw.get("precision")
        if isinstance(precision, bool) or not isinstance(precision, int) or precision < 1:
            raise self.error(f"{path}.precision", "a decimal needs an integer precision > 0")
        scale = raw.get("scale", 0)
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 0:
            raise self.error(f"{path}.scale", "a decimal scale must be an integer >= 0")
        if scale > precision:
            raise self.error(
                f"{path}.scale", f"decimal scale {scale} is greater than precision {precision}"
            )
        if kind == "fixed":
            size = raw["size"]
            most = math.floor(math.log10(2 ** (8 * size - 1) - 1)) if size > 0 else 0
            if precision > most:
                raise self.error(
                    f"{path}.precision",
                    f"decimal precision {precision} does not fit in {size} bytes (at most {most})",
                )
        return {"logicalType": "decimal", "precision": precision, "scale": scale}

    # -- named types --------------------------------------------------------------------------

    def named(self, raw: dict[str, Any], path: str, namespace: str | None) -> dict[str, Any]:
        kind = raw["type"]
        if "name" not in raw:
            raise self.error(path, f'missing "name" (a {kind} is a named type)')
        name = raw["name"]
        if not isinstance(name, str):
            raise self.error(f"{path}.name", '"name" must be a string')
        own_namespace = raw.get("namespace", namespace)
        if own_namespace is not None and not is_valid_namespace(own_namespace):
            raise self.error(f"{path}.namespace", f"{own_namespace!r} is not a valid namespace")
        full = full_name(name, own_namespace)
        if not all(is_valid_name(part) for part in full.split(".")):
            raise self.error(f"{path}.name", f"{name!r} is not a valid Avro name")
        if full.rpartition(".")[2] in PRIMITIVE_TYPES:
            raise self.error(
                f"{path}.name", f"{name!r} is a primitive type name and cannot be defined"
            )
        if full in self.definitions:
            raise self.error(f"{path}.name", f"{full} is already defined at {self.paths[full]}")
        inner = full.rpartition(".")[0] or None
        out: dict[str, Any] = {"type": kind, "name": full}
        if "." not in full and namespace:
            out["namespace"] = ""  # re-parsing must not put it in the enclosing namespace
        self.definitions[full] = out
        self.paths[full] = path
        if "doc" in raw:
            out["doc"] = self.text(raw["doc"], f"{path}.doc")
        if "aliases" in raw:
            out["aliases"] = self.aliases(raw["aliases"], f"{path}.aliases", inner, dotted=True)
        if kind == "record":
            out["fields"] = self.fields(raw, path, inner)
        elif kind == "enum":
            self.enum(raw, path, out)
        else:
            size = raw.get("size")
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise self.error(f"{path}.size", "a fixed needs an integer size >= 0")
            out["size"] = size
            logical = self.logical(raw, path, "fixed")
            if logical:
                out.update(logical)
        out.update(self.extras(raw, kind, self.logical_keys(raw) if kind == "fixed" else ()))
        return out

    def text(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise self.error(path, "must be a string")
        return value

    def aliases(self, raw: Any, path: str, namespace: str | None, *, dotted: bool) -> list[str]:
        if not isinstance(raw, list):
            raise self.error(path, '"aliases" must be an array of names')
        out = []
        for index, alias in enumerate(raw):
            parts = alias.split(".") if isinstance(alias, str) and dotted else [alias]
            if not all(is_valid_name(part) for part in parts):
                raise self.error(f"{path}[{index}]", f"{alias!r} is not a valid Avro name")
            # Aliases of named types are relative to the type's namespace (spec, "Aliases").
            out.append(full_name(alias, namespace) if dotted else alias)
        return out

    def fields(self, raw: Mapping[str, Any], path: str, namespace: str | None) -> list[Any]:
        fields = raw.get("fields")
        if not isinstance(fields, list):
            raise self.error(path, 'a record needs "fields", an array of field objects')
        out: list[dict[str, Any]] = []
        first_at: dict[str, int] = {}
        for index, field in enumerate(fields):
            here = f"{path}.fields[{index}]"
            if not isinstance(field, dict):
                raise self.error(here, "a field must be an object with a name and a type")
            self.check_duplicates(field, here)
            name = field.get("name")
            if name is None:
                raise self.error(here, 'missing "name"')
            if not is_valid_name(name):
                raise self.error(f"{here}.name", f"{name!r} is not a valid Avro name")
            if name in first_at:
                raise self.error(
                    f"{here}.name",
                    f"duplicate field name {name!r} (first at {path}.fields[{first_at[name]}])",
                )
            first_at[name] = index
            if "type" not in field:
                raise self.error(here, 'missing "type"')
            node: dict[str, Any] = {
                "name": name,
                "type": self.walk(field["type"], f"{here}.type", namespace),
            }
            if "doc" in field:
                node["doc"] = self.text(field["doc"], f"{here}.doc")
            if "default" in field:
                node["default"] = to_plain(field["default"])
                self.defaults.append((f"{here}.default", node))
            order = field.get("order", "ascending")
            if order not in _FIELD_ORDERS:
                raise self.error(
                    f"{here}.order", f"order must be one of {', '.join(_FIELD_ORDERS)}"
                )
            if order != "ascending":
                node["order"] = order
            if "aliases" in field:
                node["aliases"] = self.aliases(
                    field["aliases"], f"{here}.aliases", None, dotted=False
                )
            node.update(self.extras(field, "field"))
            out.append(node)
        return out

    def enum(self, raw: Mapping[str, Any], path: str, out: dict[str, Any]) -> None:
        symbols = raw.get("symbols")
        if not isinstance(symbols, list):
            raise self.error(path, 'an enum needs "symbols", an array of names')
        first_at: dict[str, int] = {}
        for index, symbol in enumerate(symbols):
            here = f"{path}.symbols[{index}]"
            if not is_valid_name(symbol):
                raise self.error(here, f"enum symbol {symbol!r} must match [A-Za-z_][A-Za-z0-9_]*")
            if symbol in first_at:
                raise self.error(
                    here, f"duplicate enum symbol {symbol!r} (first at index {first_at[symbol]})"
                )
            first_at[symbol] = index
        out["symbols"] = list(symbols)
        if "default" in raw:
            if raw["default"] not in first_at:
                raise self.error(
                    f"{path}.default", f"enum default {raw['default']!r} is not a symbol"
                )
            out["default"] = raw["default"]

    # -- defaults -----------------------------------------------------------------------------

    def check_defaults(self) -> None:
        lookup = self.lookup()
        for path, field in self.defaults:
            problem = defaults.default_problem(field["type"], field["default"], lookup)
            if problem is not None:
                raise self.error(path, f"bad default for field {field['name']!r}: {problem}")
            try:
                value = defaults.to_python(field["type"], field["default"], lookup)
                field["default"] = defaults.from_python(field["type"], value, lookup)
            except defaults.UnresolvedType:
                continue  # checked again once the catalogue has resolved the reference


def validate_schema(
    schema: Any,
    *,
    source: str = "<schema>",
    named_types: Lookup | None = None,
    allow_unresolved: bool = False,
) -> SchemaTree:
    """Validate a decoded schema document and return its normalised form.

    Args:
        schema: the decoded JSON (dict, list or str).
        source: the file name used in error messages.
        named_types: normalised definitions (full name -> definition) the document may
            reference without defining, e.g. from other files of a catalogue.
        allow_unresolved: accept references to types neither defined nor in
            ``named_types`` (they are listed in ``references`` for the caller to resolve).

    Raises:
        SchemaParseError: the first rule the document breaks, with source and JSON path.
    """
    walker = _Walker(source, named_types or {}, allow_unresolved)
    normalized = walker.walk(schema, "$", None)
    walker.check_defaults()
    return SchemaTree(
        schema=normalized,
        definitions=walker.definitions,
        definition_paths=walker.paths,
        references=tuple(walker.references),
    )
