"""Avro schemas → JSON Schema (draft 2020-12, the dialect of OpenAPI 3.1).

The ``.avsc`` is the contract (DESIGN.md decision 4), so the JSON Schema that documents a JSON
endpoint is derived from the Avro schema, not from the Python class. It describes the JSON
that :func:`eventplatform.connectors.sdk.payloads.parse_event` accepts:

==========================  ===================================================================
Avro                        JSON Schema
==========================  ===================================================================
null, boolean, string       ``null``, ``boolean``, ``string``
int / long                  ``integer`` within the 32 / 64-bit range (``2.0`` is an integer,
                            as JSON Schema says, and is accepted as 2)
float                       ``number`` within ±3.4028234663852886e38 (the largest float32)
double                      ``number``
bytes                       ``string``: its UTF-8 encoding is the bytes
fixed                       ``string`` of exactly ``size`` ASCII characters (so the UTF-8
                            encoding has ``size`` bytes); a component
record                      ``object``: the fields as properties, those without a default
                            required, no others allowed; a component of its full name
enum                        ``string`` with the symbols as ``enum``; a component
array / map                 ``array`` of the items / ``object`` of the values
union                       ``anyOf`` the branches
decimal                     a ``string`` of at most precision digits, scale after the point
                            (a JSON number cannot carry a decimal exactly)
uuid                        ``string``, 8-4-4-4-12 hexadecimal digits
date                        ``string``, ``YYYY-MM-DD`` (years 0001-9999, real days only)
time-millis / -micros       ``string``, ``hh:mm:ss[.ffffff]``, no offset (a time of day)
timestamp-*                 ``string``, RFC 3339 ``date-time`` with ``T``, at most 6 fraction
                            digits and an offset (``Z`` or ``±hh:mm``); on 0001-01-01 no
                            offset ahead of UTC, on 9999-12-31 none behind it (so the instant
                            lies in years 1-9999 of UTC, which every reader can represent)
local-timestamp-*           ``string``, the same without an offset
==========================  ===================================================================

Strings are described by ``pattern`` (ECMA-262, anchored) rather than ``format``: JSON Schema
treats ``format`` as an annotation and its RFC 3339 grammar allows what Python cannot hold
(year 0000, leap seconds, nanoseconds, lower-case ``t``), while a pattern is checked by every
validator and says exactly what is accepted. :func:`body_validator` checks a body against the
schema, so the webhook ingress accepts exactly what its OpenAPI document describes.

Docs become ``description``; field defaults become ``default`` (except for bytes, whose Avro
default is not their JSON form). Named types are emitted once into a ``components`` mapping
under their full names and referenced with ``$ref`` everywhere, as OpenAPI's
``#/components/schemas`` wants.
"""

from __future__ import annotations

import json
from collections.abc import Callable, MutableMapping
from typing import Any

import jsonschema_rs

from eventplatform.connectors.sdk.payloads import json_path
from eventplatform.errors import SchemaError
from eventplatform.schema import AvroEvent

__all__ = ["REF_PREFIX", "avro_to_json_schema", "body_validator", "event_json_schema"]

#: Where named types are referenced from (OpenAPI 3.1 components).
REF_PREFIX = "#/components/schemas/"

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
#: The largest finite IEEE 754 binary32 value; Avro ``float`` cannot carry more.
FLOAT32_MAX = 3.4028234663852886e38

# -- the textual forms of logical types, as ECMA-262 patterns (also valid Python regexes) ----
# Years 0001-9999: Python's datetime range, which the decoder must be able to build.
_YEAR = "(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_DAY31 = "(?:0[1-9]|[12][0-9]|3[01])"
_DAY30 = "(?:0[1-9]|[12][0-9]|30)"
_DAY28 = "(?:0[1-9]|1[0-9]|2[0-8])"
_MONTH_DAY = f"(?:(?:0[13578]|1[02])-{_DAY31}|(?:0[469]|11)-{_DAY30}|02-{_DAY28})"
# Gregorian leap years: divisible by 4, centuries only when divisible by 400 (year 0 excluded).
_LEAP_YEAR = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_DATE = f"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?"
_ZERO = "(?:Z|[+-]00:00)"
_HOURS = "(?:[01][0-9]|2[0-3]):[0-5][0-9]"
# Every day but 0001-01-01 and 9999-12-31, where an offset can leave the range in UTC.
_INNER_YEAR = (
    "(?:000[2-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
)
_INNER_DATE = (
    f"(?:{_INNER_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29"
    f"|0001-(?:01-(?:0[2-9]|[12][0-9]|3[01])|(?:0[3578]|1[02])-{_DAY31}|(?:0[469]|11)-{_DAY30}"
    f"|02-{_DAY28})"
    f"|9999-(?:(?:0[13578]|10)-{_DAY31}|12-{_DAY30}|(?:0[469]|11)-{_DAY30}|02-{_DAY28}))"
)
DATE_PATTERN = f"^{_DATE}$"
TIME_PATTERN = f"^{_TIME}$"
LOCAL_DATETIME_PATTERN = f"^{_DATE}T{_TIME}$"
DATETIME_PATTERN = (
    f"^(?:{_INNER_DATE}T{_TIME}(?:Z|[+-]{_HOURS})"
    f"|0001-01-01T{_TIME}(?:{_ZERO}|-{_HOURS})"
    f"|9999-12-31T{_TIME}(?:{_ZERO}|\\+{_HOURS}))$"
)
UUID_PATTERN = "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"

#: What a value of each pattern must be, said in words: an error quotes this, not the pattern
#: (a timestamp pattern is hundreds of characters no client can read). Decimal and fixed
#: patterns add themselves as schemas are translated.
PATTERN_MEANINGS: dict[str, str] = {
    DATE_PATTERN: "a date YYYY-MM-DD in years 0001-9999",
    TIME_PATTERN: "a time of day HH:MM:SS[.ffffff] without an offset",
    LOCAL_DATETIME_PATTERN: "a local date and time YYYY-MM-DDTHH:MM:SS[.ffffff] without an offset",
    DATETIME_PATTERN: (
        "an RFC 3339 timestamp with an offset (YYYY-MM-DDTHH:MM:SS[.ffffff]Z or ±HH:MM, "
        "at most 6 fraction digits) whose instant lies in UTC years 0001-9999"
    ),
    UUID_PATTERN: "a UUID (8-4-4-4-12 hexadecimal digits)",
}

_PRIMITIVES: dict[str, dict[str, Any]] = {
    "null": {"type": "null"},
    "boolean": {"type": "boolean"},
    "int": {"type": "integer", "minimum": _INT32[0], "maximum": _INT32[1]},
    "long": {"type": "integer", "minimum": _INT64[0], "maximum": _INT64[1]},
    "float": {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX},
    "double": {"type": "number"},
    "string": {"type": "string"},
    "bytes": {"type": "string", "description": "The bytes are the UTF-8 encoding of the text."},
}
_LOCAL = "A local date and time, without an offset."
_FORMATS: dict[str, dict[str, Any]] = {
    "uuid": {"type": "string", "pattern": UUID_PATTERN, "description": "A UUID."},
    "date": {"type": "string", "pattern": DATE_PATTERN, "description": "A date (ISO 8601)."},
    "time-millis": {"type": "string", "pattern": TIME_PATTERN, "description": "A time of day."},
    "time-micros": {"type": "string", "pattern": TIME_PATTERN, "description": "A time of day."},
    "timestamp-millis": {"type": "string", "pattern": DATETIME_PATTERN},
    "timestamp-micros": {"type": "string", "pattern": DATETIME_PATTERN},
    "timestamp-nanos": {"type": "string", "pattern": DATETIME_PATTERN},
    "local-timestamp-millis": {
        "type": "string",
        "pattern": LOCAL_DATETIME_PATTERN,
        "description": _LOCAL,
    },
    "local-timestamp-micros": {
        "type": "string",
        "pattern": LOCAL_DATETIME_PATTERN,
        "description": _LOCAL,
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
        fixed = {
            "type": "string",
            "title": _short(name),
            "description": f"{size} bytes, written as {size} ASCII characters.",
            "pattern": f"^[\\u0000-\\u007f]{{{size}}}$",
        }
        PATTERN_MEANINGS.setdefault(fixed["pattern"], f"exactly {size} ASCII characters")
        components[name] = _described(fixed, schema)
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
    whole = precision - scale
    # With no digit before the point (precision == scale) the whole part can only be 0.
    integral = f"[0-9]{{1,{whole}}}" if whole else "0"
    fraction = f"(?:\\.[0-9]{{1,{scale}}})?" if scale else ""
    pattern = f"^-?{integral}{fraction}$"
    PATTERN_MEANINGS.setdefault(
        pattern, f"a decimal string of at most {precision} digits, {scale} after the point"
    )
    return {
        "type": "string",
        "description": (
            f"A decimal of at most {precision} digits, {scale} after the point, as a string "
            "(a JSON number cannot carry it exactly)."
        ),
        "pattern": pattern,
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


def body_validator(
    event_type: type[AvroEvent],
) -> Callable[[Any], list[tuple[str, str]]]:
    """A check of parsed JSON against the JSON Schema of ``event_type``.

    The returned function gives ``(JSONPath, reason)`` per violation, at most 50, empty when
    the value fits. The ingress uses it so that it accepts exactly what its OpenAPI document
    describes.

    Raises:
        SchemaError: the class has no valid Avro schema.
    """
    # jsonschema-rs: a compiled draft 2020-12 validator (ECMA-262 patterns), fast enough to
    # run on every request; the "$ref" resolves against the same document's components.
    components: dict[str, Any] = {}
    root = event_json_schema(event_type, components)
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **root,
        "components": {"schemas": components},
    }
    validator = jsonschema_rs.validator_for(document, validate_formats=False)

    def check(value: Any) -> list[tuple[str, str]]:
        if validator.is_valid(value):
            return []
        problems: list[tuple[str, str]] = []
        for error in validator.iter_errors(value):
            path = json_path(list(error.instance_path))
            problems.append((path, _reason(error)))
            if len(problems) >= 50:
                break
        return problems

    return check


def _reason(error: Any) -> str:
    kind = error.kind
    pattern = getattr(kind, "pattern", None)
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Pattern) and isinstance(pattern, str):
        meaning = PATTERN_MEANINGS.get(pattern)
        if meaning is not None:
            return _short_reason(f"{json.dumps(error.instance)[:80]} is not {meaning}")
    return _short_reason(error.message)


def _short_reason(message: str, limit: int = 200) -> str:
    # The message quotes the offending value, which may be as long as the body.
    return message if len(message) <= limit else message[: limit - 1] + "…"
