"""The encode plan: what ``to_avro()`` does after ``model_dump()`` for fastavro to accept it.

fastavro's writer takes most of pydantic's python-mode output as it is: ``datetime``,
``date``, ``time``, ``UUID`` and ``Decimal`` for their logical types, ``bytes``, nested dicts,
and ``StrEnum`` members (they compare equal to their symbol). What it cannot take is built
once per class from the derived schema, so encoding an event never walks the schema:

- an ``Enum`` whose members are not ``str`` must be written as its value (the symbol);
- a union with two or more non-null branches is handed over in fastavro's tuple notation,
  ``(branch name, value)``, picking the branch from the Python value's type. Without it
  fastavro picks the *first* branch the value validates against, which is wrong when two
  records share field names or a ``StrEnum`` member also passes as a ``string``.

A class whose schema needs neither gets no plan at all and ``to_avro()`` is exactly
``model_dump(by_alias=True)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from eventplatform.schema.names import NAMED_TYPES
from eventplatform.schema.options import field_name

__all__ = ["Converter", "build_plan"]

Converter = Callable[[Any, Any], Any]
"""``(attribute value, dumped value) -> value for fastavro``."""

Check = Callable[[Any], bool]


class _RecordPlan:
    """Field-by-field fix-ups of one record's dumped dict, applied in place."""

    __slots__ = ("steps",)

    def __init__(self) -> None:
        self.steps: list[tuple[str, str, Converter]] = []

    def apply(self, obj: Any, dumped: Any) -> Any:
        for attribute, key, convert in self.steps:
            dumped[key] = convert(getattr(obj, attribute), dumped[key])
        return dumped


class _Planner:
    def __init__(self, definitions: Mapping[str, Any], origins: Mapping[str, object]) -> None:
        self.definitions = definitions
        self.origins = origins
        self.records: dict[str, _RecordPlan] = {}
        self.recursive: set[str] = set()

    def resolve(self, node: Any) -> Any:
        if isinstance(node, str) and node in self.definitions:
            return self.definitions[node]
        return node

    def converter(self, node: Any) -> Converter | None:
        node = self.resolve(node)
        if isinstance(node, list):
            return self.union(node)
        if not isinstance(node, dict):
            return None
        kind = node["type"]
        if kind == "record":
            return self.record(node)
        if kind == "enum":
            origin = self.origins.get(node["name"])
            if (
                isinstance(origin, type)
                and issubclass(origin, Enum)
                and not issubclass(origin, str)
            ):
                return _enum_value
            return None
        if kind == "array":
            items = self.converter(node["items"])
            if items is None:
                return None
            return lambda obj, dumped: [items(o, d) for o, d in zip(obj, dumped, strict=True)]
        if kind == "map":
            values = self.converter(node["values"])
            if values is None:
                return None
            return lambda obj, dumped: {k: values(obj[k], d) for k, d in dumped.items()}
        return None

    def record(self, node: Mapping[str, Any]) -> Converter | None:
        name = node["name"]
        if name in self.records:
            self.recursive.add(name)
            return self.records[name].apply
        model = self.origins.get(name)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        plan = self.records[name] = _RecordPlan()
        attributes = {
            field_name(attr, info, f"{model.__name__}.{attr}"): attr
            for attr, info in model.model_fields.items()
        }
        for field in node["fields"]:
            convert = self.converter(field["type"])
            if convert is not None:
                plan.steps.append((attributes[field["name"]], field["name"], convert))
        if plan.steps or name in self.recursive:
            return plan.apply
        return None

    def union(self, branches: list[Any]) -> Converter | None:
        non_null = [b for b in branches if b != "null"]
        if len(non_null) == 1:
            inner = self.converter(non_null[0])
            if inner is None:
                return None
            return lambda obj, dumped: None if obj is None else inner(obj, dumped)
        tagged = [(self.check(b), self.tag(b), self.converter(b)) for b in non_null]

        def convert(obj: Any, dumped: Any) -> Any:
            if obj is None:
                return None
            for check, tag, inner in tagged:
                if check(obj):
                    return (tag, dumped if inner is None else inner(obj, dumped))
            return dumped  # no branch fits: let fastavro report the value

        return convert

    def tag(self, node: Any) -> str:
        """The branch name fastavro's tuple notation expects: full name or type name."""
        if isinstance(node, str):
            return node
        if node["type"] in NAMED_TYPES:
            return str(node["name"])
        return str(node["type"])

    def check(self, node: Any) -> Check:
        """A predicate telling whether a Python value belongs to this union branch."""
        node = self.resolve(node)
        kind = node if isinstance(node, str) else node["type"]
        logical = node.get("logicalType") if isinstance(node, dict) else None
        if logical == "decimal":
            return _decimal_check(node["precision"], node["scale"])
        if logical in _LOGICAL_CHECKS:
            return _LOGICAL_CHECKS[logical]
        if kind in ("record", "enum"):
            origin = self.origins.get(node["name"])
            if isinstance(origin, type):
                return lambda value: isinstance(value, origin)
            symbols = set(node.get("symbols", ()))
            return lambda value: isinstance(value, str) and value in symbols
        if kind == "fixed":
            size = node["size"]
            return lambda value: isinstance(value, bytes) and len(value) == size
        return _PLAIN_CHECKS[kind]


def _decimal_check(precision: int, scale: int) -> Check:
    """Whether a Decimal fits ``decimal(precision, scale)``, as pydantic's constraint checks."""

    def check(value: Any) -> bool:
        if not isinstance(value, Decimal) or not value.is_finite():
            return False
        _, digits, exponent = value.as_tuple()
        places = max(0, -int(exponent))
        whole = max(0, len(digits) + int(exponent))
        return places <= scale and whole <= precision - scale

    return check


def _enum_value(obj: Any, dumped: Any) -> Any:
    return dumped.value if isinstance(dumped, Enum) else dumped


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool | Enum)


_PLAIN_CHECKS: dict[str, Check] = {
    "null": lambda value: value is None,
    "boolean": lambda value: isinstance(value, bool),
    "int": _is_int,
    "long": _is_int,
    "float": lambda value: isinstance(value, float),
    "double": lambda value: isinstance(value, float),
    "string": lambda value: isinstance(value, str) and not isinstance(value, Enum),
    "bytes": lambda value: isinstance(value, bytes),
    "array": lambda value: isinstance(value, list),
    "map": lambda value: isinstance(value, dict),
}

_LOGICAL_CHECKS: dict[str, Check] = {
    "uuid": lambda value: isinstance(value, UUID),
    "date": lambda value: isinstance(value, date) and not isinstance(value, datetime),
    "time-millis": lambda value: isinstance(value, time),
    "time-micros": lambda value: isinstance(value, time),
    "timestamp-millis": lambda value: isinstance(value, datetime),
    "timestamp-micros": lambda value: isinstance(value, datetime),
    "local-timestamp-millis": lambda value: isinstance(value, datetime),
    "local-timestamp-micros": lambda value: isinstance(value, datetime),
}


def build_plan(
    schema: Mapping[str, Any], definitions: Mapping[str, Any], origins: Mapping[str, object]
) -> Converter | None:
    """The converter for a record schema derived from a model class, or None if none is needed.

    Args:
        schema: the normalised record schema.
        definitions: full name -> normalised definition of each named type in it.
        origins: full name -> the Python class that defined it (from the derivation).
    """
    return _Planner(definitions, origins).converter(schema)
