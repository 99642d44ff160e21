"""Hypothesis strategies: Avro values for a schema, and Avro schemas themselves.

Values are generated in the *Avro domain*: what ``fastavro.schemaless_reader`` returns for the
schema (``str`` symbols for enums, dicts for records, ``Decimal`` at the schema's scale ...).
Schemas are generated normalised (full names), within the rules of the specification:
unique names, no union inside a union, one branch per unnamed type, defaults that match the
first union branch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from eventplatform.schema import defaults

# Keep datetimes where every conversion (epoch millis/micros, both directions) is exact.
_MIN = datetime(1900, 1, 1)
_MAX = datetime(2200, 12, 31)


def _millis_time(value: time) -> time:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _millis_datetime(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def values(
    node: Any, lookup: Mapping[str, Any], *, first_branch: bool = False
) -> st.SearchStrategy[Any]:
    """Python values fastavro would read for ``node``.

    With ``first_branch``, unions (at any depth) take values of their first branch only: what
    a default may hold.
    """
    if isinstance(node, str) and node in lookup:  # a reference: lazily, types may recurse
        definition = lookup[node]
        return st.deferred(lambda: values(definition, lookup, first_branch=first_branch))
    if isinstance(node, list):
        if first_branch:
            return values(node[0], lookup, first_branch=True)
        return st.one_of([values(branch, lookup) for branch in node])
    kind = defaults.type_name(node)
    logical = node.get("logicalType") if isinstance(node, dict) else None
    if logical == "decimal":
        precision, scale = node["precision"], node["scale"]
        bound = 10**precision - 1
        return st.integers(-bound, bound).map(lambda unscaled: Decimal(unscaled).scaleb(-scale))
    if logical in _LOGICAL:
        return _LOGICAL[logical]
    if kind in ("float", "double") and first_branch:  # JSON has no infinities
        return _PRIMITIVE[kind].filter(math.isfinite)
    if kind in _PRIMITIVE:
        return _PRIMITIVE[kind]
    if kind == "fixed":
        return st.binary(min_size=node["size"], max_size=node["size"])
    if kind == "enum":
        return st.sampled_from(node["symbols"])
    if kind == "array":
        return st.lists(values(node["items"], lookup, first_branch=first_branch), max_size=3)
    if kind == "map":
        inner = values(node["values"], lookup, first_branch=first_branch)
        return st.dictionaries(st.text(max_size=5), inner, max_size=3)
    return st.fixed_dictionaries(
        {f["name"]: values(f["type"], lookup, first_branch=first_branch) for f in node["fields"]}
    )


_PRIMITIVE: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(width=32, allow_nan=False),
    "double": st.floats(allow_nan=False),
    "string": st.text(max_size=10),
    "bytes": st.binary(max_size=10),
}
_LOGICAL: dict[str, st.SearchStrategy[Any]] = {
    "uuid": st.uuids(),
    "date": st.dates(),
    "time-millis": st.times().map(_millis_time),
    "time-micros": st.times(),
    "timestamp-millis": st.datetimes(_MIN, _MAX, timezones=st.just(UTC)).map(_millis_datetime),
    "timestamp-micros": st.datetimes(_MIN, _MAX, timezones=st.just(UTC)),
    "local-timestamp-millis": st.datetimes(_MIN, _MAX).map(_millis_datetime),
    "local-timestamp-micros": st.datetimes(_MIN, _MAX),
}

# -- schemas ------------------------------------------------------------------------------------

_TRICKY_NAMES = [
    "class", "from", "model_config", "model_x", "json", "copy", "schema", "date", "time",
    "Field", "Decimal", "UUID", "_private", "__dunder__", "name", "type", "fields", "id",
    "None", "Annotated", "AvroEvent", "items", "str", "list", "self", "mro", "value",
]  # fmt: skip
_names = st.one_of(
    st.sampled_from(_TRICKY_NAMES),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
)
_docs = st.one_of(
    st.none(),
    st.sampled_from(["A short doc.", 'Says "hi"', "Back\\slash", "Two\n\nparagraphs here."]),
    st.text(max_size=150),
)
_PRIMITIVE_NODES = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"]
_LOGICAL_NODES = [
    {"type": "string", "logicalType": "uuid"},
    {"type": "int", "logicalType": "date"},
    {"type": "int", "logicalType": "time-millis"},
    {"type": "long", "logicalType": "time-micros"},
    {"type": "long", "logicalType": "timestamp-millis"},
    {"type": "long", "logicalType": "timestamp-micros"},
    {"type": "long", "logicalType": "local-timestamp-millis"},
    {"type": "long", "logicalType": "local-timestamp-micros"},
]


class _Namer:
    """Unique full names across one generated schema, and the named types defined so far."""

    def __init__(self) -> None:
        self.count = 0
        self.done: dict[str, dict[str, Any]] = {}

    def referable(self, namespace: str | None) -> list[str]:
        """Completed named types a reference can reach from ``namespace``.

        A null-namespace name cannot be spelled inside a namespace (Avro spec, "Names").
        """
        return sorted(name for name in self.done if "." in name or namespace is None)

    def __call__(self, kind: str, namespace: str | None) -> str:
        self.count += 1
        name = f"{kind.title()}{self.count}"
        return f"{namespace}.{name}" if namespace else name


@st.composite
def _decimal(draw: st.DrawFn, namer: _Namer, namespace: str | None) -> dict[str, Any]:
    if draw(st.booleans()):
        precision = draw(st.integers(1, 20))
        scale = draw(st.integers(0, precision))
        return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}
    size = draw(st.integers(1, 8))
    most = math.floor(math.log10(2 ** (8 * size - 1) - 1))
    precision = draw(st.integers(1, max(1, most)))
    scale = draw(st.integers(0, precision))
    node = {
        "type": "fixed",
        "name": namer("fixed", namespace),
        "size": size,
        "logicalType": "decimal",
        "precision": precision,
        "scale": scale,
    }
    namer.done[str(node["name"])] = node
    return node


@st.composite
def _type(draw: st.DrawFn, namer: _Namer, namespace: str | None, depth: int) -> Any:
    choices = ["primitive", "logical", "decimal", "enum", "fixed"]
    if depth < 2:
        choices += ["array", "map", "record", "union"]
    if namer.referable(namespace):
        choices.append("reference")
    choice = draw(st.sampled_from(choices))
    if choice == "reference":
        return draw(st.sampled_from(namer.referable(namespace)))
    if choice == "primitive":
        return draw(st.sampled_from(_PRIMITIVE_NODES))
    if choice == "logical":
        return dict(draw(st.sampled_from(_LOGICAL_NODES)))
    if choice == "decimal":
        return draw(_decimal(namer, namespace))
    if choice == "enum":
        symbols = draw(st.lists(_names, min_size=1, max_size=4, unique=True))
        node: dict[str, Any] = {"type": "enum", "name": namer("enum", namespace)}
        doc = draw(_docs)
        if doc is not None:
            node["doc"] = doc
        node["symbols"] = symbols
        if draw(st.booleans()):
            node["default"] = draw(st.sampled_from(symbols))
        return node
    if choice == "fixed":
        return {
            "type": "fixed",
            "name": namer("fixed", namespace),
            "size": draw(st.integers(0, 16)),
        }
    if choice == "array":
        return {"type": "array", "items": draw(_type(namer, namespace, depth + 1))}
    if choice == "map":
        return {"type": "map", "values": draw(_type(namer, namespace, depth + 1))}
    if choice == "record":
        inner = draw(st.sampled_from([namespace, "com.example.other", None]))
        return draw(records(namer, inner, depth + 1, enclosing=namespace))
    return draw(_union(namer, namespace, depth))


def _forget(namer: _Namer, node: Any) -> None:
    """Drop the named types a discarded node defined: nothing may reference them."""
    for name in definitions(node):
        namer.done.pop(name, None)


def _branch_key(node: Any) -> str:
    if isinstance(node, str):
        return node
    if node["type"] in ("record", "enum", "fixed"):
        return str(node["name"])
    return str(node["type"])


@st.composite
def _union(draw: st.DrawFn, namer: _Namer, namespace: str | None, depth: int) -> list[Any]:
    branches: list[Any] = ["null"] if draw(st.booleans()) else []
    seen = {_branch_key(b) for b in branches}
    for _ in range(draw(st.integers(1, 3))):
        node = draw(_type(namer, namespace, depth + 1))
        if isinstance(node, list) or _branch_key(node) in seen:
            _forget(namer, node)
            continue
        seen.add(_branch_key(node))
        branches.append(node)
    if len(branches) < 2:  # Python has no one-branch union (Union[X] is X)
        _forget(namer, branches)
        return draw(_type(namer, namespace, depth + 1))
    if draw(st.booleans()) and "null" in branches:
        branches.remove("null")
        branches.append("null")
    return branches


@st.composite
def records(
    draw: st.DrawFn,
    namer: _Namer | None = None,
    namespace: str | None = "com.example.gen",
    depth: int = 0,
    enclosing: str | None = None,
) -> dict[str, Any]:
    """A normalised record schema with random fields, docs, defaults and nested types."""
    namer = namer or _Namer()
    name = namer("record", namespace)
    node: dict[str, Any] = {"type": "record", "name": name}
    if "." not in name and enclosing:
        node["namespace"] = ""
    doc = draw(_docs)
    if doc is not None:
        node["doc"] = doc
    if draw(st.booleans()):
        node["aliases"] = [f"com.example.old.{name.rpartition('.')[2]}"]
    fields = []
    for field_name in draw(st.lists(_names, max_size=5, unique=True)):
        field: dict[str, Any] = {"name": field_name, "type": draw(_type(namer, namespace, depth))}
        doc = draw(_docs)
        if doc is not None:
            field["doc"] = doc
        if draw(st.booleans()):
            first = field["type"][0] if isinstance(field["type"], list) else field["type"]
            value = draw(values(first, namer.done, first_branch=True))
            field["default"] = defaults.from_python(first, value, namer.done)
        if draw(st.integers(0, 4)) == 0:
            field["order"] = draw(st.sampled_from(["descending", "ignore"]))
        if draw(st.integers(0, 4)) == 0:
            field["aliases"] = [f"old_{field_name}"]
        fields.append(field)
    node["fields"] = fields
    namer.done[name] = node
    return node


def definitions(node: Any, out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Full name -> definition of the named types inside a (partly built) schema."""
    out = {} if out is None else out
    if isinstance(node, list):
        for branch in node:
            definitions(branch, out)
    elif isinstance(node, dict):
        if node.get("type") in ("record", "enum", "fixed"):
            out[node["name"]] = node
        for field in node.get("fields", ()):
            definitions(field["type"], out)
        for key in ("items", "values"):
            if key in node:
                definitions(node[key], out)
    return out
