"""Field defaults: between the JSON an ``.avsc`` holds and the Python value a model holds.

Avro writes a default in the JSON encoding of the field's type (specification, "Schema
Declaration" > "Records", table of default values): bytes and fixed as strings whose code points
0-255 are the byte values, enums as their symbol, records as objects, and logical types as
their underlying type (a ``date`` default is an ``int`` of days, a ``decimal`` one the bytes of
its unscaled two's-complement value).

For a union the default must match the **first** branch. Avro 1.12 relaxed this to "the first
branch that matches" (AVRO-3649), but Avro Java before 1.12 and the Confluent registries built
on it still reject such schemas, so eventplatform keeps the stricter rule everywhere.

All functions work on *normalised* schema nodes (see :mod:`eventplatform.schema.avsc`):
full names everywhere, a named type defined once and referenced by full name afterwards, and
``lookup`` mapping those full names to their definitions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from eventplatform.schema.markers import INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN

__all__ = [
    "DefaultError",
    "UnresolvedType",
    "default_problem",
    "from_python",
    "resolve",
    "to_python",
    "type_name",
]

Lookup = Mapping[str, Mapping[str, Any]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_EPOCH_DATE = date(1970, 1, 1)


class DefaultError(ValueError):
    """A default value does not fit its Avro type; the message says why."""


def resolve(node: Any, lookup: Lookup) -> Any:
    """The definition behind a type reference, or the node itself."""
    if isinstance(node, str) and node in lookup:
        return lookup[node]
    return node


def type_name(node: Any) -> str:
    """The Avro type name of a normalised node: ``"int"``, ``"record"``, ``"union"``, ..."""
    if isinstance(node, list):
        return "union"
    if isinstance(node, dict):
        return str(node["type"])
    return str(node)


def default_problem(node: Any, value: Any, lookup: Lookup) -> str | None:
    """Why ``value`` is not a valid JSON default for ``node``, or None if it is (or is unknowable).

    A reference to a type missing from ``lookup`` cannot be checked yet and counts as valid.
    """
    try:
        to_python(node, value, lookup)
    except DefaultError as exc:
        return str(exc)
    except UnresolvedType:
        return None
    return None


class UnresolvedType(LookupError):
    """A named type the lookup does not hold (defined in a file not loaded yet)."""


def _bytes_of(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise DefaultError(f"a {what} default must be a string of code points 0-255")
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise DefaultError(
            f"a {what} default must be a string of code points 0-255 (one per byte)"
        ) from None


def _int_of(value: Any, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DefaultError(f"a {what} default must be an integer, got {value!r}")
    if not low <= value <= high:
        raise DefaultError(f"{value} is out of range for {what}")
    return value


def _decimal_from(raw: bytes, scale: int) -> Decimal:
    return Decimal(int.from_bytes(raw, "big", signed=True)).scaleb(-scale)


def to_python(node: Any, value: Any, lookup: Lookup) -> Any:
    """The Python value a JSON default stands for: what fastavro would read for it.

    Records become dicts of Python values, enums their symbol.

    Raises:
        DefaultError: ``value`` does not fit ``node``.
    """
    if isinstance(node, str) and node not in lookup and type_name(node) not in _PRIMITIVE:
        raise UnresolvedType(node)
    node = resolve(node, lookup)
    kind = type_name(node)
    if kind == "union":
        return to_python(node[0], value, lookup)
    logical = node.get("logicalType") if isinstance(node, dict) else None
    if kind == "null":
        if value is not None:
            raise DefaultError(f"a null default must be null, got {value!r}")
        return None
    if kind == "boolean":
        if not isinstance(value, bool):
            raise DefaultError(f"a boolean default must be true or false, got {value!r}")
        return value
    if kind == "int":
        number = _int_of(value, INT32_MIN, INT32_MAX, "int")
        if logical == "date":
            return _EPOCH_DATE + timedelta(days=number)
        if logical == "time-millis":
            return _time_of(number * 1000)
        return number
    if kind == "long":
        number = _int_of(value, INT64_MIN, INT64_MAX, "long")
        return _long_logical(number, logical)
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DefaultError(f"a {kind} default must be a number, got {value!r}")
        return float(value)
    if kind == "string":
        if not isinstance(value, str):
            raise DefaultError(f"a string default must be a string, got {value!r}")
        if logical == "uuid":
            try:
                return UUID(value)
            except ValueError:
                raise DefaultError(f"{value!r} is not a UUID") from None
        return value
    if kind in ("bytes", "fixed"):
        raw = _bytes_of(value, kind)
        if kind == "fixed" and len(raw) != node["size"]:
            raise DefaultError(f"a fixed default must be {node['size']} bytes, got {len(raw)}")
        if logical == "decimal":
            return _decimal_from(raw, node.get("scale", 0))
        return raw
    if kind == "enum":
        if value not in node["symbols"]:
            raise DefaultError(f"{value!r} is not one of the enum's symbols {node['symbols']}")
        return value
    if kind == "array":
        if not isinstance(value, list):
            raise DefaultError(f"an array default must be a JSON array, got {value!r}")
        return [to_python(node["items"], item, lookup) for item in value]
    if kind == "map":
        if not isinstance(value, dict):
            raise DefaultError(f"a map default must be a JSON object, got {value!r}")
        return {key: to_python(node["values"], item, lookup) for key, item in value.items()}
    if kind == "record":
        return _record_to_python(node, value, lookup)
    raise DefaultError(f"unknown type {kind!r}")


_PRIMITIVE = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def _time_of(micros: int) -> time:
    if not 0 <= micros < 86_400_000_000:
        raise DefaultError(f"{micros} microseconds is not a time of day")
    seconds, micro = divmod(micros, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return time(hour, minute, second, micro)


def _long_logical(number: int, logical: str | None) -> Any:
    try:
        if logical == "time-micros":
            return _time_of(number)
        if logical == "timestamp-millis":
            return _EPOCH + timedelta(milliseconds=number)
        if logical == "timestamp-micros":
            return _EPOCH + timedelta(microseconds=number)
        if logical == "local-timestamp-millis":
            return _EPOCH_NAIVE + timedelta(milliseconds=number)
        if logical == "local-timestamp-micros":
            return _EPOCH_NAIVE + timedelta(microseconds=number)
    except OverflowError:
        raise DefaultError(f"{number} is outside the datetime range") from None
    return number


def _record_to_python(node: Mapping[str, Any], value: Any, lookup: Lookup) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DefaultError(f"a record default must be a JSON object, got {value!r}")
    out: dict[str, Any] = {}
    names = {field["name"] for field in node["fields"]}
    for key in value:
        if key not in names:
            raise DefaultError(f"record {node['name']} has no field {key!r}")
    for field in node["fields"]:
        if field["name"] in value:
            out[field["name"]] = to_python(field["type"], value[field["name"]], lookup)
        elif "default" in field:
            out[field["name"]] = to_python(field["type"], field["default"], lookup)
        else:
            raise DefaultError(f"the default lacks field {field['name']!r} of {node['name']}")
    return out


def _unscaled(value: Decimal, scale: int) -> int:
    if not value.is_finite():
        raise DefaultError(f"{value} cannot be a decimal default")
    scaled = value.scaleb(scale)
    if scaled != scaled.to_integral_value():
        raise DefaultError(f"{value} has more than {scale} digits after the point")
    return int(scaled)


def from_python(node: Any, value: Any, lookup: Lookup) -> Any:
    """The JSON default for the Python ``value`` of a field of type ``node``.

    Accepts what a pydantic field may hold as default: models, enum members, ``Decimal``,
    ``UUID``, dates and times, ``bytes``, containers of them.

    Raises:
        DefaultError: ``value`` does not fit ``node`` (for a union: its first branch).
    """
    node = resolve(node, lookup)
    kind = type_name(node)
    if kind == "union":
        return from_python(node[0], value, lookup)
    logical = node.get("logicalType") if isinstance(node, dict) else None
    if kind == "null":
        if value is not None:
            raise DefaultError(f"{value!r} is not null")
        return None
    if kind == "boolean":
        if not isinstance(value, bool):
            raise DefaultError(f"{value!r} is not a bool")
        return value
    if kind in ("int", "long"):
        return _int_from_python(value, kind, logical)
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DefaultError(f"{value!r} is not a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise DefaultError(f"{value!r} cannot be written as a JSON default")
        return float(value)
    if kind == "string":
        if logical == "uuid" and isinstance(value, UUID):
            return str(value)
        if not isinstance(value, str) or isinstance(value, Enum):
            raise DefaultError(f"{value!r} is not a str")
        return value
    if kind in ("bytes", "fixed"):
        return _bytes_from_python(node, kind, logical, value)
    if kind == "enum":
        symbol = value.value if isinstance(value, Enum) else value
        if symbol not in node["symbols"]:
            raise DefaultError(f"{value!r} is not a symbol of enum {node['name']}")
        return symbol
    if kind == "array":
        if not isinstance(value, list | tuple):
            raise DefaultError(f"{value!r} is not a list")
        return [from_python(node["items"], item, lookup) for item in value]
    if kind == "map":
        if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
            raise DefaultError(f"{value!r} is not a dict with str keys")
        return {key: from_python(node["values"], item, lookup) for key, item in value.items()}
    if kind == "record":
        if isinstance(value, BaseModel):
            value = value.model_dump(by_alias=True)
        if not isinstance(value, dict):
            raise DefaultError(f"{value!r} is not a {node['name']} record")
        return {
            field["name"]: from_python(field["type"], value[field["name"]], lookup)
            for field in node["fields"]
            if field["name"] in value
        }
    raise DefaultError(f"unknown type {kind!r}")


def _int_from_python(value: Any, kind: str, logical: str | None) -> int:
    if logical == "date" and isinstance(value, date) and not isinstance(value, datetime):
        return (value - _EPOCH_DATE).days
    if logical in ("time-millis", "time-micros") and isinstance(value, time):
        micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000
        micros += value.microsecond
        return micros // 1000 if logical == "time-millis" else micros
    if logical is not None and "timestamp" in logical and isinstance(value, datetime):
        local = logical.startswith("local-")
        if local or value.tzinfo is None:
            delta = value.replace(tzinfo=None) - _EPOCH_NAIVE
        else:
            delta = value - _EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return micros // 1000 if logical.endswith("millis") else micros
    if isinstance(value, bool) or not isinstance(value, int):
        raise DefaultError(f"{value!r} is not an int")
    low, high = (INT32_MIN, INT32_MAX) if kind == "int" else (INT64_MIN, INT64_MAX)
    if not low <= value <= high:
        raise DefaultError(f"{value} is out of range for {kind}")
    return value


def _bytes_from_python(node: Mapping[str, Any], kind: str, logical: str | None, value: Any) -> str:
    size = node["size"] if kind == "fixed" else None
    if logical == "decimal" and isinstance(value, Decimal):
        unscaled = _unscaled(value, node.get("scale", 0))
        length = size if size is not None else (unscaled.bit_length() + 8) // 8
        try:
            raw = unscaled.to_bytes(length, "big", signed=True)
        except OverflowError:
            raise DefaultError(f"{value} does not fit in {size} bytes") from None
        return raw.decode("latin-1")
    if not isinstance(value, bytes):
        raise DefaultError(f"{value!r} is not bytes")
    if size is not None and len(value) != size:
        raise DefaultError(f"{value!r} is not {size} bytes long")
    return value.decode("latin-1")
