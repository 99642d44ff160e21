"""Example values of Avro schemas, in the JSON form the webhook ingress accepts.

The catalogue shows one example per event type and puts it in the ``curl`` line to try, so
the example must be accepted as it is: it is the JSON that
:func:`eventplatform.connectors.sdk.payloads.parse_event` takes (strict JSON mode), written from
the Avro schema the way
:mod:`eventplatform.connectors.builtin.ingress.jsonschema` describes it: UUIDs,
RFC 3339 timestamps and ISO dates as strings, decimals as strings (exact), a union as the
value of one branch (the first that is not ``null``, so the example shows the field's shape),
an enum as its first symbol, an array as one item, a map as one entry.

A field default that is not ``null`` is the example of its field, since it is the value a
producer that omits the field gets.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from eventplatform.errors import SchemaError

__all__ = ["example_value"]

_EXAMPLE_UUID = "7d0c4c1e-2b8a-4f6e-9d3a-5b1c2e4f6a80"
_LOGICAL: dict[str, Any] = {
    "uuid": _EXAMPLE_UUID,
    "date": "2026-05-01",
    "time-millis": "12:00:00.000",
    "time-micros": "12:00:00.000000",
    "timestamp-millis": "2026-05-01T12:00:00Z",
    "timestamp-micros": "2026-05-01T12:00:00Z",
    "timestamp-nanos": "2026-05-01T12:00:00Z",
    "local-timestamp-millis": "2026-05-01T12:00:00",
    "local-timestamp-micros": "2026-05-01T12:00:00",
}
_PRIMITIVES: dict[str, Any] = {
    "null": None,
    "boolean": True,
    "int": 1,
    "long": 1,
    "float": 1.5,
    "double": 1.5,
    "bytes": "",
}


def example_value(schema: Any, *, field: str | None = None) -> Any:
    """An example JSON value of a normalised, self-contained Avro schema.

    Args:
        schema: the schema (named types defined where first used, as the catalogue's
            resolved schemas are).
        field: the name of the field the value is for; strings are named after it.

    Raises:
        SchemaError: the schema uses something that is not Avro.
    """
    return _Examples().value(schema, field)


class _Examples:
    """Walks one schema, remembering named types for later references to them."""

    def __init__(self) -> None:
        self.named: dict[str, dict[str, Any]] = {}
        self.depth = 0

    def value(self, schema: Any, field: str | None) -> Any:
        if isinstance(schema, str):
            return self._named_or_primitive(schema, field)
        if isinstance(schema, list):
            branches = [b for b in schema if b != "null"] or schema
            return self.value(branches[0], field) if branches else None
        if not isinstance(schema, Mapping):
            raise SchemaError(f"not an Avro schema: {schema!r}")
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if logical == "decimal" and kind in ("bytes", "fixed"):
            return _decimal(schema)
        if isinstance(logical, str) and logical in _LOGICAL:
            return _LOGICAL[logical]
        if kind in ("record", "error", "enum", "fixed"):
            self.named[str(schema["name"])] = dict(schema)
        if kind in ("record", "error"):
            return self._record(schema)
        if kind == "enum":
            return str(schema["symbols"][0]) if schema.get("symbols") else ""
        if kind == "fixed":
            return "\u0000" * int(schema.get("size", 0))
        if kind == "array":
            # A recursive type (a tree of records) stops at the second level.
            return [] if self.depth > 8 else [self.value(schema["items"], field)]
        if kind == "map":
            return {} if self.depth > 8 else {"key": self.value(schema["values"], field)}
        if isinstance(kind, str | list | Mapping):
            return self.value(kind, field)
        raise SchemaError(f"not an Avro schema: {schema!r}")

    def _named_or_primitive(self, name: str, field: str | None) -> Any:
        if name == "string":
            return _string(field)
        if name in _PRIMITIVES:
            return _PRIMITIVES[name]
        if name in self.named:
            # A reference to a type defined earlier (or a recursive one being defined).
            return None if self.depth > 8 else self.value(self.named[name], field)
        raise SchemaError(f"unknown Avro type {name!r} (named types must be defined first)")

    def _record(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        self.depth += 1
        try:
            out: dict[str, Any] = {}
            for item in schema.get("fields", []):
                name = str(item["name"])
                default = item.get("default")
                if default is not None and not _is_bytes(item["type"]):
                    out[name] = default
                else:
                    out[name] = self.value(item["type"], name)
            return out
        finally:
            self.depth -= 1


def _string(field: str | None) -> str:
    if field is None:
        return "text"
    lowered = field.lower()
    if "email" in lowered:
        return "someone@example.com"
    if lowered.endswith(("url", "uri")):
        return "https://example.com/"
    return f"{field}-1"


def _decimal(schema: Mapping[str, Any]) -> str:
    precision = int(schema.get("precision", 1))
    scale = int(schema.get("scale", 0))
    # 9.99 for (10, 2): one digit left of the point (when the precision leaves room for one),
    # every digit of the scale a 9.
    whole = 1 if precision > scale else 0
    return str(Decimal("9" * (whole + scale) or "0").scaleb(-scale))


def _is_bytes(schema: Any) -> bool:
    if isinstance(schema, list):
        return bool(schema) and _is_bytes(schema[0])
    if isinstance(schema, Mapping):
        return schema.get("type") in ("bytes", "fixed")
    return bool(schema == "bytes")
