"""Which event classes the raw codec can handle, and the raw form of their schemas.

:mod:`eventplatform.schema._codec.rawcodec` writes and reads events with a schema whose logical
types are removed (:func:`strip_logical_types`), and builds decoded instances without validation
only for classes :func:`constructible` accepts. Both decisions live here, apart from the code
generation, because they are what a reviewer must check to trust the fast path.
"""

from __future__ import annotations

import types
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Union, get_args, get_origin
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, NaiveDatetime

from eventplatform.schema.markers import (
    AvroDecimal,
    AvroField,
    Fixed,
    Float32,
    Int32,
    KeepOrder,
    Millis,
)
from eventplatform.schema.names import NAMED_TYPES

__all__ = ["constructible", "encodable", "logical_signature", "strip_logical_types"]

_LOGICAL_KEYS = ("logicalType", "precision", "scale")
_MARKERS = (type(Int32), type(Float32), type(Millis), AvroDecimal, Fixed, AvroField, KeepOrder)
_PLAIN_TYPES: tuple[object, ...] = (
    type(None),
    bool,
    int,
    float,
    str,
    bytes,
    UUID,
    date,
    time,
    datetime,
    Decimal,
    AwareDatetime,
    NaiveDatetime,
)
# model_config keys that change neither the stored values nor how fields are named/validated
# beyond what the schema already says; any other key sends the class to the validating path.
_SAFE_CONFIG = frozenset(
    {
        "extra",
        "frozen",
        "title",
        "populate_by_name",
        "validate_by_name",
        "validate_by_alias",
        "serialize_by_alias",
        "validate_assignment",
        "revalidate_instances",
        "protected_namespaces",
        "json_schema_extra",
        "use_attribute_docstrings",
        "defer_build",
    }
)


def logical_signature(parsed: Any) -> tuple[Any, ...]:
    """The logical-type attributes of a parsed schema in depth-first order.

    Two schemas with equal Parsing Canonical Form *and* equal signature read the same values,
    which the canonical form alone does not promise (it drops ``logicalType``).
    """
    out: list[Any] = []
    seen: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for branch in node:
                walk(branch)
        elif isinstance(node, dict):
            name = node.get("name")
            if node.get("type") in NAMED_TYPES and isinstance(name, str):
                if name in seen:
                    return
                seen.add(name)
            out.append(tuple(node.get(key) for key in _LOGICAL_KEYS))
            for field in node.get("fields", ()):
                walk(field["type"])
            for key in ("items", "values"):
                if key in node:
                    walk(node[key])
        else:
            out.append(node)

    walk(parsed)
    return tuple(out)


def strip_logical_types(node: Any) -> Any:
    """The schema with logical types removed: the underlying type of each."""
    if isinstance(node, list):
        return [strip_logical_types(branch) for branch in node]
    if not isinstance(node, dict):
        return node
    stripped = {k: v for k, v in node.items() if k not in _LOGICAL_KEYS}
    if "fields" in stripped:
        stripped["fields"] = [
            {**f, "type": strip_logical_types(f["type"])} for f in stripped["fields"]
        ]
    for key in ("items", "values"):
        if key in stripped:
            stripped[key] = strip_logical_types(stripped[key])
    if stripped["type"] in ("record", "enum", "fixed", "array", "map"):
        return stripped
    return stripped["type"] if len(stripped) == 1 else stripped


def _plain_annotation(tp: Any, models: list[type[BaseModel]]) -> bool:
    """Whether a field annotation validates to exactly what the decoder builds."""
    if get_origin(tp) is Annotated:
        inner, *metadata = get_args(tp)
        return all(isinstance(m, _MARKERS) for m in metadata) and _plain_annotation(inner, models)
    origin = get_origin(tp)
    if origin is list:
        return _plain_annotation(get_args(tp)[0], models)
    if origin is dict:
        key, value = get_args(tp)
        return key is str and _plain_annotation(value, models)
    if origin in (Union, types.UnionType):
        return all(_plain_annotation(arg, models) for arg in get_args(tp))
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        models.append(tp)
        return True
    if isinstance(tp, type) and issubclass(tp, Enum):
        return True
    return tp is None or tp in _PLAIN_TYPES


def constructible(model: type[BaseModel], seen: set[type[BaseModel]]) -> bool:
    """Whether validating a decoded record of ``model`` is provably redundant.

    True when neither the class nor any record class it contains has validators, a custom
    ``__init__`` or ``model_post_init``, private attributes, a config key that alters values
    (``str_strip_whitespace``, ``use_enum_values`` ...), or field metadata other than our own
    markers (``max_length``, ``gt``, ``Strict`` ... are pydantic constraints Avro lacks).
    """
    if model in seen:
        return True
    seen.add(model)
    decorators = model.__pydantic_decorators__
    if (
        decorators.validators
        or decorators.field_validators
        or decorators.root_validators
        or decorators.model_validators
        or model.__init__ is not BaseModel.__init__
        or model.__pydantic_post_init__ is not None
        or model.__private_attributes__
        or model.__pydantic_root_model__
        or not set(model.model_config) <= _SAFE_CONFIG
    ):
        return False
    nested: list[type[BaseModel]] = []
    for info in model.model_fields.values():
        if not all(isinstance(m, _MARKERS) for m in info.metadata):
            return False
        if not _plain_annotation(info.annotation, nested):
            return False
    return all(constructible(m, seen) for m in nested)


def encodable(model: type[BaseModel], seen: set[type[BaseModel]]) -> bool:
    """Whether reading attributes gives what ``model_dump`` would: no custom serializers."""
    if model in seen:
        return True
    seen.add(model)
    decorators = model.__pydantic_decorators__
    if decorators.field_serializers or decorators.model_serializers:
        return False
    nested: list[type[BaseModel]] = []
    for info in model.model_fields.values():
        if not all(isinstance(m, _MARKERS) for m in info.metadata):
            return False
        if not _plain_annotation(info.annotation, nested):
            return False
    return all(encodable(m, seen) for m in nested)
