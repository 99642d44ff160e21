"""Reading ``.avsc`` documents: JSON decoding, validation with JSON paths, normal forms.

:func:`parse_avsc` is the entry point. It decodes the JSON (reporting line and column on a
syntax error), walks the schema checking the rules of the Avro specification 1.12
(https://avro.apache.org/docs/1.12.0/specification/) and reports the first violation as a
:class:`~eventplatform.errors.SchemaParseError` naming the file, the JSON path
(``$.fields[2].type``) and the reason. fastavro's parser then runs as a backstop; it rarely
says *where* a problem is, which is why the walk exists.

The walk (:mod:`eventplatform.schema.tree`) also produces the **normalised** form of the
schema, which everything else in :mod:`eventplatform.schema` works on:

- every named type's ``name`` is its full name and ``namespace`` is dropped (kept only as
  ``""`` where a null-namespace type sits inside a namespaced one, so the text re-parses to the
  same names);
- a named type is defined at its first use and referenced by full name afterwards;
- a primitive without attributes is a bare string (``{"type": "int"}`` becomes ``"int"``);
- attributes come in a fixed order (type, name, doc, aliases, then the type's own), unknown
  attributes after them sorted by key; ``"order": "ascending"`` (the default) is dropped, a
  decimal always states its scale and defaults are rewritten in their canonical JSON.

:func:`normalized_json` of that form is what gets registered: unlike the Parsing Canonical Form
(:func:`canonical_form`) it keeps docs, defaults, aliases and logical types, which schema
evolution and compatibility checks depend on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import fastavro

from eventplatform.errors import SchemaParseError
from eventplatform.schema.names import NAMED_TYPES, PRIMITIVE_TYPES
from eventplatform.schema.tree import Lookup, SchemaTree, validate_schema

__all__ = [
    "SchemaTree",
    "canonical_form",
    "check_with_fastavro",
    "inline",
    "load_json",
    "normalize",
    "normalized_json",
    "parse_avsc",
    "read_avsc",
    "validate_schema",
]


class _JsonObject(dict[str, Any]):
    """A decoded JSON object that remembers keys it saw more than once."""

    __slots__ = ("duplicates",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__()
        seen: list[str] = []
        for key, value in pairs:
            if key in self:
                seen.append(key)
            self[key] = value
        self.duplicates = tuple(seen)


def load_json(text: str, *, source: str = "<schema>") -> Any:
    """Decode JSON text, keeping track of duplicate object keys for the validator.

    Raises:
        SchemaParseError: the text is not JSON; the message has ``source:line:column``.
    """
    try:
        return json.loads(text, object_pairs_hook=_JsonObject)
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON: {exc.msg}"
        raise SchemaParseError(
            f"{source}:{exc.lineno}:{exc.colno}: {reason}", source=source, reason=reason
        ) from exc


def read_avsc(path: Path) -> Any:
    """Read and JSON-decode an ``.avsc`` file (no schema validation yet).

    Raises:
        SchemaParseError: the file cannot be read or is not JSON.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = f"cannot read the file: {exc}"
        raise SchemaParseError(f"{path}: {reason}", source=str(path), reason=reason) from exc
    return load_json(text, source=str(path))


def check_with_fastavro(tree: SchemaTree, source: str, named_types: Lookup) -> None:
    """Let fastavro parse the schema too; report anything it refuses that the walk did not."""
    if any(name not in tree.definitions for name, _ in tree.references):
        schema = inline(tree.schema, named_types)
    else:
        schema = tree.schema
    try:
        fastavro.parse_schema(schema, named_schemas={})
    except Exception as exc:
        reason = f"fastavro rejects the schema: {exc}"
        raise SchemaParseError(
            f"{source}: $: {reason}", source=source, json_path="$", reason=reason
        ) from exc


def inline(schema: Any, named_types: Lookup) -> Any:
    """Make a normalised schema self-contained: define each type of ``named_types`` it uses.

    The first use of such a type becomes its definition and later uses stay references; a type
    already defined inside an inlined definition is not defined a second time.
    """
    seen: set[str] = set()

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            if node in named_types and node not in seen:
                return walk(named_types[node])
            return node
        if isinstance(node, list):
            return [walk(branch) for branch in node]
        if not isinstance(node, dict):
            return node
        if node.get("type") in NAMED_TYPES:
            if node["name"] in seen:
                return node["name"]
            seen.add(node["name"])
        out = dict(node)
        if "fields" in node:
            out["fields"] = [{**field, "type": walk(field["type"])} for field in node["fields"]]
        if "items" in node:
            out["items"] = walk(node["items"])
        if "values" in node:
            out["values"] = walk(node["values"])
        return out

    return walk(schema)


def parse_avsc(
    source: str | Path | Mapping[str, Any] | list[Any],
    *,
    named_types: Lookup | None = None,
) -> SchemaTree:
    """Load and validate one schema: an ``.avsc`` path, JSON text, or an already decoded value.

    A ``str`` is taken as JSON text when it starts with ``{``, ``[`` or ``"``, else as a path.

    Args:
        source: the schema.
        named_types: normalised definitions the schema may reference (e.g. a catalogue's).

    Raises:
        SchemaParseError: the file cannot be read, is not JSON, or is not a valid schema; the
            message names the file, the JSON path and the reason.
    """
    if isinstance(source, Path) or (
        isinstance(source, str) and not source.lstrip().startswith(("{", "[", '"'))
    ):
        name = str(source)
        raw = read_avsc(Path(source))
    elif isinstance(source, str):
        name = "<schema>"
        raw = load_json(source)
    else:
        name = "<schema>"
        raw = source
    tree = validate_schema(raw, source=name, named_types=named_types)
    check_with_fastavro(tree, name, named_types or {})
    return tree


def normalize(schema: Any) -> Any:
    """The normalised form of a self-contained schema (decoded JSON, or JSON text).

    Raises:
        SchemaParseError: the schema is not valid.
    """
    if isinstance(schema, str) and schema.lstrip().startswith(("{", "[", '"')):
        schema = load_json(schema)
    return validate_schema(schema).schema


def normalized_json(schema: Any) -> str:
    """Compact JSON of :func:`normalize`: stable text for registering and comparing schemas.

    Two schemas that differ only in whitespace, key order, namespace spelling, ``{"type":
    "int"}`` versus ``"int"`` or the JSON spelling of a default give the same text; docs,
    defaults, aliases, logical types and custom attributes are kept.

    Raises:
        SchemaParseError: the schema is not valid.
    """
    return json.dumps(normalize(schema), separators=(",", ":"), ensure_ascii=False)


def canonical_form(schema: Any) -> str:
    """The Avro Parsing Canonical Form of a schema (decoded JSON, or JSON text).

    Implements the transformation of the specification ("Parsing Canonical Form for Schemas":
    PRIMITIVES, FULLNAMES, STRIP, ORDER, STRINGS, INTEGERS, WHITESPACE). Apache Avro's Python
    package has ``Schema.canonical_form`` but 1.12 gets two cases wrong: a primitive carrying a
    logical type stays ``{"type": "bytes"}`` instead of ``"bytes"``, and a named type used a
    second time inside a map or array is written out again instead of referenced by name.

    Raises:
        SchemaParseError: the schema is not valid.
    """
    return json.dumps(_pcf(normalize(schema)), separators=(",", ":"), ensure_ascii=False)


def _pcf(node: Any) -> Any:
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return [_pcf(branch) for branch in node]
    kind = node["type"]
    if kind in PRIMITIVE_TYPES:
        return kind
    if kind == "array":
        return {"type": "array", "items": _pcf(node["items"])}
    if kind == "map":
        return {"type": "map", "values": _pcf(node["values"])}
    out: dict[str, Any] = {"name": node["name"], "type": kind}
    if kind == "record":
        out["fields"] = [{"name": f["name"], "type": _pcf(f["type"])} for f in node["fields"]]
    elif kind == "enum":
        out["symbols"] = node["symbols"]
    else:
        out["size"] = node["size"]
    return out
