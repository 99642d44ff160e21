"""What a reader can read back: the value space of each Avro type, checked before encoding.

Avro's binary encoding can carry values its readers cannot turn back into what was written: a
``timestamp-millis`` whose instant falls before year 1 in UTC (Python's ``datetime`` starts
there; fastavro then fails with "date value out of range"), an ``int`` beyond 32 bits (fastavro
writes the varint, Java readers refuse it), a ``float`` beyond 32-bit range (written as
infinity), a time of day or local timestamp whose UTC offset would be dropped. So nothing is
encoded unless the decoder returns it equal; the rules, per Avro type (Avro specification
1.12, "Primitive Types", "Complex Types", "Logical Types"):

=============================  =========================================================
``int`` / ``long``             an ``int`` (not ``bool``) within 32 / 64 bits
``float``                      finite values within 32-bit range (NaN and ±inf pass)
``timestamp-*``                an instant from 0001-01-01T00:00Z to 9999-12-31T23:59:59.999999Z
                               (a naive ``datetime`` is local time, as fastavro writes it)
``local-timestamp-*``          a naive ``datetime``
``time-*``                     a naive ``time`` (Avro's time of day has no zone)
``date``                       a ``date`` that is not a ``datetime``
``decimal``                    finite; ``value × 10**scale`` whole, below ``10**precision``
``uuid``                       a ``UUID``
``fixed``, ``enum``            exactly ``size`` bytes; one of the symbols
=============================  =========================================================

Two losses are documented, not refused: ``Millis`` truncates below the millisecond, and
``Float32`` rounds to 32-bit precision; both are the schema's declared precision.

:func:`record_check` compiles these rules once per record schema into a function over what
:meth:`~eventplatform.schema.AvroEvent.to_avro` returns; the error names the field path
(``items[2].unit_price``). The fast codec (:mod:`eventplatform.schema._codec`) checks the same
bounds inline and asks this readable path for the precise error when it refuses a value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Context, Decimal
from enum import Enum
from time import mktime
from typing import Any, Final, NoReturn
from uuid import UUID

from eventplatform.schema.markers import INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN
from eventplatform.schema.names import NAMED_TYPES

__all__ = [
    "FLOAT32_LIMIT",
    "MICROS_MAX",
    "MICROS_MIN",
    "MILLIS_MAX",
    "MILLIS_MIN",
    "Check",
    "Refused",
    "epoch_units",
    "record_check",
    "unscaled",
    "value_check",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST: Final = datetime.min.replace(tzinfo=UTC)
_LAST: Final = datetime.max.replace(tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_US: Final = timedelta(microseconds=1)

MILLIS_MIN: Final = (_FIRST - _EPOCH) // _MS
"""Epoch milliseconds of 0001-01-01T00:00:00Z, the first instant a reader can represent."""
MILLIS_MAX: Final = (_LAST - _EPOCH) // _MS
"""Epoch milliseconds of 9999-12-31T23:59:59.999Z, the last instant at millisecond precision."""
MICROS_MIN: Final = (_FIRST - _EPOCH) // _US
"""Epoch microseconds of 0001-01-01T00:00:00Z."""
MICROS_MAX: Final = (_LAST - _EPOCH) // _US
"""Epoch microseconds of 9999-12-31T23:59:59.999999Z."""
FLOAT32_LIMIT: Final = 2.0**128 - 2.0**103
"""The smallest magnitude that rounds to infinity as a 32-bit float (IEEE 754, half to even)."""

_DAY_MS: Final = 86_400_000
_DAY_US: Final = 86_400_000_000

Check = Callable[[Any], Any]
"""Takes a value in ``to_avro()`` form; returns it (or its equal that fastavro writes) or
raises :class:`Refused`."""


class Refused(Exception):
    """A value outside its Avro type's value space.

    Attributes:
        reason: what is wrong, naming the value.
        path: the field path from the record, innermost last (``["items", 2, "price"]``).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str | int] = []

    @property
    def where(self) -> str:
        """The path as text: ``items[2].price``."""
        text = ""
        for part in reversed(self.path):
            if isinstance(part, int):
                text += f"[{part}]"
            elif text:
                text += f".{part}"
            else:
                text = part
        return text


def _refuse(reason: str) -> NoReturn:
    raise Refused(reason)


def _show(value: Any) -> str:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool | Enum)


def _integer(kind: str, low: int, high: int) -> Check:
    def check(value: Any) -> Any:
        if not isinstance(value, int):
            _refuse(f"expected an integer ({kind}), got {_show(value)}")
        if not low <= value <= high:
            _refuse(f"{value} is outside Avro {kind}'s range {low}..{high}")
        return value

    return check


def _number(kind: str, value: Any) -> float:
    if not isinstance(value, float | int) or isinstance(value, bool):
        _refuse(f"expected a number ({kind}), got {_show(value)}")
    try:
        return float(value)
    except OverflowError:
        _refuse(f"{value} is beyond the range of Avro {kind}")


def _float32(value: Any) -> Any:
    number = _number("float", value)
    if math.isfinite(number) and not -FLOAT32_LIMIT < number < FLOAT32_LIMIT:
        _refuse(f"{value} is beyond the range of Avro float (32-bit); it would become infinity")
    return value


def _double(value: Any) -> Any:
    _number("double", value)
    return value


def _typed(kind: str, types: type | tuple[type, ...]) -> Check:
    def check(value: Any) -> Any:
        if not isinstance(value, types):
            _refuse(f"expected {kind}, got {_show(value)}")
        return value

    return check


def _null(value: Any) -> Any:
    if value is not None:
        _refuse(f"expected null, got {_show(value)}")


def _string(value: Any) -> Any:
    if not isinstance(value, str):
        _refuse(f"expected a string, got {_show(value)}")
    return value


_PRIMITIVES: dict[str, Check] = {
    "null": _null,
    "boolean": _typed("a boolean", bool),
    "int": _integer("int", INT32_MIN, INT32_MAX),
    "long": _integer("long", INT64_MIN, INT64_MAX),
    "float": _float32,
    "double": _double,
    "string": _string,
    "bytes": _typed("bytes", (bytes, bytearray)),
}


def epoch_units(value: datetime, unit: timedelta) -> int:
    """Epoch milli/microseconds (``unit``) of a ``timestamp-*`` as fastavro writes them.

    A naive ``datetime`` is local time, as fastavro's writer takes it (``time.mktime``).

    Raises:
        OverflowError, ValueError: a naive value the platform's ``mktime`` cannot convert.
    """
    if value.tzinfo is not None:
        return (value - _EPOCH) // unit
    seconds = int(mktime(value.timetuple()))
    if unit == _MS:
        return seconds * 1000 + value.microsecond // 1000
    return seconds * 1_000_000 + value.microsecond


def _timestamp(logical: str) -> Check:
    millis = logical.endswith("millis")
    unit, low, high = (_MS, MILLIS_MIN, MILLIS_MAX) if millis else (_US, MICROS_MIN, MICROS_MAX)

    def check(value: Any) -> Any:
        if isinstance(value, datetime):
            try:
                units = epoch_units(value, unit)
            except (OverflowError, ValueError, OSError) as exc:
                _refuse(f"{_show(value)} cannot be converted from local time: {exc}")
        elif _is_int(value):
            units = value
        else:
            _refuse(f"expected a datetime ({logical}), got {_show(value)}")
        if units < low:
            _refuse(
                f"{_show(value)} is before 0001-01-01T00:00:00Z, the first instant a "
                f"{logical} reader can represent"
            )
        if units > high:
            _refuse(
                f"{_show(value)} is after 9999-12-31T23:59:59.999999Z, the last instant a "
                f"{logical} reader can represent"
            )
        return value

    return check


def _local_timestamp(logical: str) -> Check:
    millis = logical.endswith("millis")
    low, high = (MILLIS_MIN, MILLIS_MAX) if millis else (MICROS_MIN, MICROS_MAX)

    def check(value: Any) -> Any:
        if isinstance(value, datetime):
            if value.tzinfo is not None:
                _refuse(
                    f"{_show(value)} has a UTC offset, which {logical} cannot carry; "
                    "give the local date and time without one"
                )
        elif not (_is_int(value) and low <= value <= high):
            _refuse(f"expected a naive datetime ({logical}), got {_show(value)}")
        return value

    return check


def _time(logical: str) -> Check:
    day = _DAY_MS if logical.endswith("millis") else _DAY_US

    def check(value: Any) -> Any:
        if isinstance(value, time):
            if value.tzinfo is not None:
                _refuse(
                    f"{_show(value)} has a UTC offset, which {logical} (a time of day without "
                    "zone) cannot carry; give the local time without one"
                )
        elif not (_is_int(value) and 0 <= value < day):
            _refuse(f"expected a time of day ({logical}), got {_show(value)}")
        return value

    return check


def _date(value: Any) -> Any:
    if isinstance(value, datetime) or not isinstance(value, date):
        _refuse(f"expected a date, got {_show(value)}")
    return value


def _uuid(value: Any) -> Any:
    if not isinstance(value, UUID):
        _refuse(f"expected a UUID, got {_show(value)}")
    return value


def unscaled(value: Any, precision: int, scale: int) -> int:
    """The unscaled integer of a ``decimal(precision, scale)`` value (Avro spec, "Decimal").

    Raises:
        Refused: not a finite ``Decimal``, more places than ``scale``, or ``precision`` digits
            exceeded.
    """
    if not isinstance(value, Decimal):
        _refuse(f"expected a Decimal, got {_show(value)}")
    if not value.is_finite():
        _refuse(f"{value} is not a finite decimal")
    numerator, denominator = value.as_integer_ratio()
    whole, remainder = divmod(numerator * 10**scale, denominator)
    if remainder:
        _refuse(f"{value} has more than {scale} decimal places")
    if not -(10**precision) < whole < 10**precision:
        _refuse(f"{value} exceeds the decimal's precision ({precision} digits)")
    return int(whole)


def _decimal(precision: int, scale: int, size: int | None) -> Check:
    context = Context(prec=precision)

    def check(value: Any) -> Any:
        whole = unscaled(value, precision, scale)
        if size is not None and not -(2 ** (8 * size - 1)) <= whole < 2 ** (8 * size - 1):
            _refuse(f"{value} does not fit {size} bytes")
        if value.as_tuple().exponent == -scale and (whole or not value.is_signed()):
            return value
        # The same value at the scale's exponent, which fastavro writes as it reads back:
        # it refuses more digits after the point than the scale even when they are zeros
        # (1.10 for scale 1), and writes -0 on a fixed as -1 unscaled (-0.2 for scale 1).
        return Decimal(whole).scaleb(-scale, context)

    return check


class _Compiler:
    """Compiles the check of one schema; named types are compiled once (recursion allowed)."""

    def __init__(self, definitions: Mapping[str, Any]) -> None:
        self.definitions = definitions
        self.named: dict[str, Check] = {}

    def compile(self, node: Any) -> Check:
        if isinstance(node, str):
            if node in self.named:
                return self.named[node]
            if node in self.definitions:
                return self.compile(self.definitions[node])
            return _PRIMITIVES[node]
        if isinstance(node, list):
            return self.union(node)
        kind, logical = node["type"], node.get("logicalType")
        if kind in NAMED_TYPES and node["name"] in self.named:
            return self.named[node["name"]]
        if logical == "decimal" and kind in ("bytes", "fixed"):
            return self.name(
                node, _decimal(node["precision"], node.get("scale", 0), node.get("size"))
            )
        if logical in ("timestamp-millis", "timestamp-micros") and kind == "long":
            return _timestamp(logical)
        if logical in ("local-timestamp-millis", "local-timestamp-micros") and kind == "long":
            return _local_timestamp(logical)
        if (logical, kind) in (("time-millis", "int"), ("time-micros", "long")):
            return _time(logical)
        if logical == "date" and kind == "int":
            return _date
        if logical == "uuid" and kind == "string":
            return _uuid
        if kind == "record":
            return self.record(node)
        if kind == "enum":
            return self.name(node, self.enum(node))
        if kind == "fixed":
            return self.name(node, self.fixed(node["size"]))
        if kind == "array":
            return self.array(node)
        if kind == "map":
            return self.map(node)
        return _PRIMITIVES[kind]

    def name(self, node: Mapping[str, Any], check: Check) -> Check:
        if node["type"] in NAMED_TYPES:
            self.named[node["name"]] = check
        return check

    @staticmethod
    def enum(node: Mapping[str, Any]) -> Check:
        symbols = frozenset(node["symbols"])

        def check(value: Any) -> Any:
            symbol = value.value if isinstance(value, Enum) else value
            if symbol not in symbols:
                _refuse(f"{_show(value)} is not a symbol of enum {node['name']}")
            return value

        return check

    @staticmethod
    def fixed(size: int) -> Check:
        def check(value: Any) -> Any:
            if not isinstance(value, bytes | bytearray) or len(value) != size:
                _refuse(f"expected exactly {size} bytes (fixed), got {_show(value)}")
            return value

        return check

    def record(self, node: Mapping[str, Any]) -> Check:
        fields: list[tuple[str, Check, bool]] = []
        name = node["name"]

        def check(value: Any) -> Any:
            if not isinstance(value, dict):
                _refuse(f"expected a record {name}, got {_show(value)}")
            for key, inner, required in fields:
                if key not in value:
                    if required:
                        _refuse(f"field {key} is missing")
                    continue
                item = value[key]
                try:
                    checked = inner(item)
                except Refused as refused:
                    refused.path.append(key)
                    raise
                if checked is not item:
                    value[key] = checked
            return value

        self.named[name] = check  # before the fields: a record may contain itself
        for field in node["fields"]:
            fields.append((field["name"], self.compile(field["type"]), "default" not in field))
        return check

    def array(self, node: Mapping[str, Any]) -> Check:
        items = self.compile(node["items"])

        def check(value: Any) -> Any:
            if isinstance(value, tuple):
                value = list(value)
            elif not isinstance(value, list):
                _refuse(f"expected an array, got {_show(value)}")
            for index, item in enumerate(value):
                try:
                    checked = items(item)
                except Refused as refused:
                    refused.path.append(index)
                    raise
                if checked is not item:
                    value[index] = checked
            return value

        return check

    def map(self, node: Mapping[str, Any]) -> Check:
        values = self.compile(node["values"])

        def check(value: Any) -> Any:
            if not isinstance(value, dict):
                _refuse(f"expected a map, got {_show(value)}")
            for key, item in value.items():
                if not isinstance(key, str):
                    _refuse(f"map keys are strings, got {_show(key)}")
                try:
                    checked = values(item)
                except Refused as refused:
                    refused.path.append(key)
                    raise
                if checked is not item:
                    value[key] = checked
            return value

        return check

    def union(self, branches: list[Any]) -> Check:
        non_null = [b for b in branches if b != "null"]
        nullable = len(non_null) < len(branches)
        if len(non_null) == 1:
            only = self.compile(non_null[0])
            if not nullable:
                return only
            return lambda value: None if value is None else only(value)
        compiled = {_tag(b): self.compile(b) for b in branches}

        def check(value: Any) -> Any:
            if value is None and nullable:
                return None
            if type(value) is tuple and len(value) == 2 and value[0] in compiled:
                # fastavro's tuple notation, (branch, value): what to_avro() hands over for
                # unions of several non-null branches.
                return (value[0], compiled[value[0]](value[1]))
            for inner in compiled.values():
                try:
                    return inner(value)
                except Refused:
                    continue
            _refuse(f"{_show(value)} fits no branch of the union {list(compiled)}")

        return check


def _tag(node: Any) -> str:
    if isinstance(node, str):
        return node
    if node["type"] in NAMED_TYPES:
        return str(node["name"])
    return str(node["type"])


def record_check(schema: Mapping[str, Any], definitions: Mapping[str, Any]) -> Check:
    """The check of records of a normalised record schema, compiled once.

    The returned function takes the record as :meth:`AvroEvent.to_avro` builds it, returns it
    (with decimals re-expressed at their scale where fastavro needs it) and raises
    :class:`Refused`, whose ``path`` names the field, for the first value outside its type's
    value space.

    Args:
        schema: the normalised record schema.
        definitions: full name -> normalised definition of each named type in it.
    """
    return _Compiler(definitions).compile(schema)


def value_check(node: Any, definitions: Mapping[str, Any]) -> Check:
    """The check of values of any normalised schema ``node`` (see :func:`record_check`)."""
    return _Compiler(definitions).compile(node)
