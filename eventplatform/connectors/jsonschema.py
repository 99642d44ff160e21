"""Avro schemas → JSON Schema (draft 2020-12, the dialect of OpenAPI 3.1).

The ``.avsc`` is the contract (DESIGN.md decision 4), so the JSON Schema that documents a JSON
endpoint is derived from the Avro schema, not from the Python class. It describes the JSON
that :func:`eventplatform.connectors.payloads.parse_event` accepts:

==========================  ===================================================================
Avro                        JSON Schema
==========================  ===================================================================
null, boolean, string       ``null``, ``boolean``, ``string``
int / long                  ``integer`` within the 32 / 64-bit range
float / double              ``number``
bytes, fixed                ``string`` (``fixed``: of its size)
record                      ``object``: the fields as properties, those without a default
                            required, no others allowed; a component of its full name
enum                        ``string`` with the symbols as ``enum``; a component
array / map                 ``array`` of the items / ``object`` of the values
union                       ``anyOf`` the branches
decimal                     a ``string`` (exact) or a ``number``, at most precision digits
uuid                        ``string``, format ``uuid``
date                        ``string``, format ``date`` (ISO 8601)
time-millis / -micros       ``string``, format ``time``
timestamp-*                 ``string``, format ``date-time`` (RFC 3339 with an offset)
local-timestamp-*           ``string``, format ``date-time`` without an offset
==========================  ===================================================================

Docs become ``description``; field defaults become ``default`` (except for bytes, whose Avro
default is not their JSON form). Named types are emitted once into a ``components`` mapping
under their full names and referenced with ``$ref`` everywhere, as OpenAPI's
``#/components/schemas`` wants.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from eventplatform.errors import SchemaError
from eventplatform.schema import AvroEvent

__all__ = ["REF_PREFIX", "avro_to_json_schema", "event_json_schema"]

#: Where named types are referenced from (OpenAPI 3.1 components).
REF_PREFIX = "#/components/schemas/"

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_PRIMITIVES: dict[str, dict[str, Any]] = {
    "null": {"type": "null"},
    "boolean": {"type": "boolean"},
    "int": {"type": "integer", "minimum": _INT32[0], "maximum": _INT32[1]},
    "long": {"type": "integer", "minimum": _INT64[0], "maximum": _INT64[1]},
    "float": {"type": "number"},
    "double": {"type": "number"},
    "string": {"type": "string"},
    "bytes": {"type": "string"},
}
_FORMATS = {
    "uuid": {"type": "string", "format": "uuid"},
    "date": {"type": "string", "format": "date"},
    "time-millis": {"type": "string", "format": "time"},
    "time-micros": {"type": "string", "format": "time"},
    "timestamp-millis": {"type": "string", "format": "date-time"},
    "timestamp-micros": {"type": "string", "format": "date-time"},
    "timestamp-nanos": {"type": "string", "format": "date-time"},
    "local-timestamp-millis": {
        "type": "string",
        "format": "date-time",
        "description": "A local date and time, without an offset.",
    },
    "local-timestamp-micros": {
        "type": "string",
        "format": "date-time",
        "description": "A local date and time, without an offset.",
    },
}


def event_json_schema(
    event_type: type[AvroEvent], components: MutableMapping[str, Any]
) -> dict[str, Any]:
    """A ``$ref`` to the JSON Schema of ``event_type``, its named types added to ``components``.

    Raises:
        SchemaError: the class has no valid Avro schema.
    """
    return avro_to_json_schema(event_type.avro_schema(), components)


def avro_to_json_schema(schema: Any, components: MutableMapping[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a normalised Avro schema (named types with full names).

    Args:
        schema: the schema (a type name, a union list or a complex type dict).
        components: receives each named type once, under its full name.

    Raises:
        SchemaError: the schema uses something that is not Avro.
    """
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return dict(_PRIMITIVES[schema])
        if schema in components:
            return {"$ref": REF_PREFIX + schema}
        raise SchemaError(f"unknown Avro type {schema!r} (named types must be defined first)")
    if isinstance(schema, list):
        return {"anyOf": [avro_to_json_schema(branch, components) for branch in schema]}
    if not isinstance(schema, dict):
        raise SchemaError(f"not an Avro schema: {schema!r}")
    kind = schema.get("type")
    logical = schema.get("logicalType")
    if logical == "decimal" and kind in ("bytes", "fixed"):
        return _decimal(schema)
    if isinstance(logical, str) and logical in _FORMATS:
        return dict(_FORMATS[logical])
    if kind in ("record", "error"):
        return _record(schema, components)
    if kind == "enum":
        name = str(schema["name"])
        components[name] = _described(
            {"type": "string", "title": _short(name), "enum": list(schema["symbols"])}, schema
        )
        return {"$ref": REF_PREFIX + name}
    if kind == "fixed":
        name = str(schema["name"])
        size = int(schema["size"])
        components[name] = _described(
            {"type": "string", "title": _short(name), "description": f"{size} bytes."}, schema
        )
        return {"$ref": REF_PREFIX + name}
    if kind == "array":
        return {"type": "array", "items": avro_to_json_schema(schema["items"], components)}
    if kind == "map":
        return {
            "type": "object",
            "additionalProperties": avro_to_json_schema(schema["values"], components),
        }
    if isinstance(kind, str) and kind in _PRIMITIVES:
        return dict(_PRIMITIVES[kind])
    return avro_to_json_schema(kind, components)


def _record(schema: dict[str, Any], components: MutableMapping[str, Any]) -> dict[str, Any]:
    name = str(schema["name"])
    # Registered before the fields are walked, so a recursive reference finds it.
    components[name] = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in schema.get("fields", []):
        # JSON Schema 2020-12 (OpenAPI 3.1) allows keywords next to "$ref".
        prop = avro_to_json_schema(field["type"], components)
        if field.get("doc"):
            prop["description"] = field["doc"]
        if "default" in field:
            if not _is_bytes(field["type"]):
                prop["default"] = field["default"]
        else:
            required.append(field["name"])
        properties[field["name"]] = prop
    record: dict[str, Any] = {
        "type": "object",
        "title": _short(name),
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        record["required"] = required
    components[name] = _described(record, schema)
    return {"$ref": REF_PREFIX + name}


def _decimal(schema: dict[str, Any]) -> dict[str, Any]:
    precision = int(schema.get("precision", 0))
    scale = int(schema.get("scale", 0))
    return {
        "type": ["string", "number"],
        "description": (
            f"A decimal of at most {precision} digits, {scale} after the point; "
            "send it as a string to keep it exact."
        ),
        "pattern": rf"^-?\d{{1,{max(1, precision - scale)}}}(\.\d{{1,{max(1, scale)}}})?$"
        if scale
        else rf"^-?\d{{1,{max(1, precision)}}}$",
    }


def _is_bytes(schema: Any) -> bool:
    if isinstance(schema, list):
        return bool(schema) and _is_bytes(schema[0])
    if isinstance(schema, dict):
        return schema.get("type") in ("bytes", "fixed")
    return bool(schema == "bytes")


def _described(target: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if schema.get("doc"):
        target["description"] = schema["doc"]
    target["x-avro-name"] = schema["name"]
    return target


def _short(name: str) -> str:
    return name.rpartition(".")[2]
