"""Python types to Avro types: how a pydantic model becomes an Avro record schema.

=============================================  ==============================================
Python                                         Avro
=============================================  ==============================================
``None``                                       ``null``
``bool``                                       ``boolean``
``int`` / ``Annotated[int, Int32]``            ``long`` / ``int``
``float`` / ``Annotated[float, Float32]``      ``double`` / ``float``
``str``, ``bytes``                             ``string``, ``bytes``
``Annotated[bytes, Fixed(n, name=...)]``       ``fixed``
``Enum`` with ``str`` values                   ``enum`` (symbols = the values)
a pydantic model                               ``record``
``list[T]``, ``dict[str, T]``                  ``array``, ``map``
``A | B | None``                               union (see below)
``UUID``                                       ``string`` / ``uuid``
``date``                                       ``int`` / ``date``
``time`` (``Millis`` marker for millis)        ``long`` / ``time-micros``
``datetime``, ``AwareDatetime``                ``long`` / ``timestamp-micros`` (``Millis``)
``NaiveDatetime``                              ``long`` / ``local-timestamp-micros``
``Annotated[Decimal, AvroDecimal(p, s)]``      ``bytes`` / ``decimal`` (``fixed`` with Fixed)
=============================================  ==============================================

Names: an :class:`~eventplatform.schema.AvroEvent` subclass or :class:`AvroEnum` carries its
own name and namespace; a plain pydantic model or ``Enum`` is named after its class in the
namespace of the record that uses it. A named type is defined at its first use and referenced
by name afterwards (Avro allows no second definition).

Unions put ``None`` first (``T | None`` is ``["null", T]``, the spec's advice for optional
values) unless the field has a non-null default: Avro requires a default to match the first
branch, so the first member that can hold it goes first. The other members keep the
annotation's order; ``Annotated[T | None, KeepOrder()]`` keeps it exactly. The result is a
*normalised* schema (full names; see :mod:`eventplatform.schema.avsc`).
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Union, get_args, get_origin
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, NaiveDatetime
from pydantic.fields import FieldInfo

from eventplatform.errors import SchemaError
from eventplatform.schema import defaults
from eventplatform.schema.markers import (
    AvroDecimal,
    AvroField,
    Fixed,
    Float32,
    Int32,
    KeepOrder,
    Micros,
    Millis,
)
from eventplatform.schema.names import NAMED_TYPES, full_name, is_valid_name, is_valid_namespace
from eventplatform.schema.options import (
    NO_DEFAULT,
    EnumOptions,
    RecordOptions,
    clean_doc,
    field_default,
    field_name,
)

__all__ = [
    "Derivation",
    "derive",
    "derive_schema",
]


def _options_of(model: type[BaseModel], namespace: str | None) -> RecordOptions:
    options = model.__dict__.get("__avro_options__")
    if isinstance(options, RecordOptions):
        return options
    return RecordOptions(name=model.__name__, namespace=namespace)


@dataclass(slots=True)
class _Markers:
    int32: bool = False
    float32: bool = False
    unit: str | None = None
    decimal: AvroDecimal | None = None
    fixed: Fixed | None = None

    @classmethod
    def of(cls, meta: tuple[Any, ...]) -> _Markers:
        found = cls()
        for item in meta:
            if item is Int32:
                found.int32 = True
            elif item is Float32:
                found.float32 = True
            elif item is Millis or item is Micros:
                found.unit = repr(item)
            elif isinstance(item, AvroDecimal):
                found.decimal = item
            elif isinstance(item, Fixed):
                found.fixed = item
        return found

    def present(self) -> list[str]:
        names = []
        if self.int32:
            names.append("Int32")
        if self.float32:
            names.append("Float32")
        if self.unit:
            names.append(self.unit)
        if self.decimal:
            names.append("AvroDecimal")
        if self.fixed:
            names.append("Fixed")
        return names

    def allow(self, where: str, python: str, *allowed: str) -> None:
        stray = [name for name in self.present() if name not in allowed]
        if stray:
            raise SchemaError(f"{where}: {', '.join(stray)} does not apply to {python}")


class _Deriver:
    """One derivation: the named types defined so far, in document order."""

    def __init__(self) -> None:
        self.origins: dict[str, object] = {}
        self.definitions: dict[str, dict[str, Any]] = {}

    def copy(self) -> _Deriver:
        other = _Deriver()
        other.origins = dict(self.origins)
        other.definitions = dict(self.definitions)
        return other

    def define(
        self, full: str, origin: object, where: str, namespace: str | None
    ) -> tuple[bool, str]:
        """Return (already defined?, name); raise on a clash of two types with one name."""
        if full in self.origins:
            if self.origins[full] != origin:
                raise SchemaError(f"{where}: two different types are both named {full}")
            if "." not in full and namespace:
                raise SchemaError(
                    f"{where}: {full} has no namespace and cannot be referenced from inside "
                    f"namespace {namespace!r} (Avro names cannot express it); give it one"
                )
            return True, full
        self.origins[full] = origin
        return False, full

    # -- records ------------------------------------------------------------------------------

    def record(self, model: type[BaseModel], namespace: str | None, where: str) -> Any:
        options = _options_of(model, namespace)
        known, full = self.define(options.full_name, model, where, namespace)
        if known:
            return full
        node: dict[str, Any] = {"type": "record", "name": full}
        if "." not in full and namespace:
            node["namespace"] = ""
        self.definitions[full] = node
        doc = options.doc if options.doc is not None else clean_doc(model.__dict__.get("__doc__"))
        if doc is not None:
            node["doc"] = doc
        inner = full.rpartition(".")[0] or None
        if options.aliases:
            node["aliases"] = [full_name(alias, inner) for alias in options.aliases]
        if not model.__pydantic_complete__:
            _rebuild(model, where)
        node["fields"] = [
            self.field(model, name, info, inner) for name, info in model.model_fields.items()
        ]
        return node

    def field(
        self, model: type[BaseModel], name: str, info: FieldInfo, namespace: str | None
    ) -> dict[str, Any]:
        where = f"{model.__name__}.{name}"
        avro_name = field_name(name, info, where)
        meta = tuple(info.metadata)
        default = field_default(info)
        node: dict[str, Any] = {
            "name": avro_name,
            "type": self.type_of(info.annotation, meta, namespace, where, default),
        }
        if info.description is not None:
            node["doc"] = info.description
        if default is not NO_DEFAULT:
            try:
                node["default"] = defaults.from_python(node["type"], default, self.definitions)
            except defaults.DefaultError as exc:
                raise SchemaError(f"{where}: default {default!r} does not fit: {exc}") from exc
        extra = next((item for item in meta if isinstance(item, AvroField)), None)
        if extra is not None:
            if extra.order not in (None, "ascending"):
                node["order"] = extra.order
            if extra.aliases:
                node["aliases"] = list(extra.aliases)
        return node

    # -- types --------------------------------------------------------------------------------

    def type_of(
        self,
        annotation: Any,
        meta: tuple[Any, ...],
        namespace: str | None,
        where: str,
        default: Any = NO_DEFAULT,
    ) -> Any:
        origin = get_origin(annotation)
        if origin is Annotated:
            inner, *more = get_args(annotation)
            return self.type_of(inner, meta + tuple(more), namespace, where, default)
        is_union = origin is Union or origin is types.UnionType
        if not is_union and any(isinstance(item, KeepOrder) for item in meta):
            raise SchemaError(f"{where}: KeepOrder() applies to unions only")
        markers = _Markers.of(meta)
        if annotation is None or annotation is types.NoneType:
            markers.allow(where, "None")
            return "null"
        if is_union:
            return self.union(get_args(annotation), meta, namespace, where, default)
        if origin is list:
            markers.allow(where, "list")
            (item,) = get_args(annotation) or (Any,)
            return {"type": "array", "items": self.type_of(item, (), namespace, f"{where}[]")}
        if origin is dict:
            markers.allow(where, "dict")
            key, value = get_args(annotation) or (Any, Any)
            if key is not str:
                raise SchemaError(f"{where}: Avro map keys are strings; use dict[str, ...]")
            return {"type": "map", "values": self.type_of(value, (), namespace, f"{where}{{}}")}
        if not isinstance(annotation, type) or annotation is list or annotation is dict:
            raise SchemaError(f"{where}: {annotation!r} has no Avro equivalent")
        return self.scalar(annotation, markers, namespace, where)

    def scalar(self, cls: type, markers: _Markers, namespace: str | None, where: str) -> Any:
        label = cls.__name__
        if issubclass(cls, bool):
            markers.allow(where, label)
            return "boolean"
        if issubclass(cls, Enum):
            markers.allow(where, label)
            return self.enum(cls, namespace, where)
        if issubclass(cls, BaseModel):
            markers.allow(where, label)
            return self.record(cls, namespace, where)
        if cls is AwareDatetime or cls is NaiveDatetime or issubclass(cls, datetime):
            markers.allow(where, label, "Millis", "Micros")
            local = "local-" if cls is NaiveDatetime else ""
            unit = "millis" if markers.unit == "Millis" else "micros"
            return {"type": "long", "logicalType": f"{local}timestamp-{unit}"}
        if issubclass(cls, date):
            markers.allow(where, label)
            return {"type": "int", "logicalType": "date"}
        if issubclass(cls, time):
            markers.allow(where, label, "Millis", "Micros")
            if markers.unit == "Millis":
                return {"type": "int", "logicalType": "time-millis"}
            return {"type": "long", "logicalType": "time-micros"}
        if issubclass(cls, UUID):
            markers.allow(where, label)
            return {"type": "string", "logicalType": "uuid"}
        if issubclass(cls, Decimal):
            return self.decimal(markers, namespace, where)
        if issubclass(cls, int):
            markers.allow(where, label, "Int32")
            return "int" if markers.int32 else "long"
        if issubclass(cls, float):
            markers.allow(where, label, "Float32")
            return "float" if markers.float32 else "double"
        if issubclass(cls, str):
            markers.allow(where, label)
            return "string"
        if issubclass(cls, bytes):
            markers.allow(where, label, "Fixed")
            if markers.fixed is not None:
                return self.fixed(markers.fixed, None, namespace, where)
            return "bytes"
        raise SchemaError(f"{where}: {label} has no Avro equivalent")

    def decimal(self, markers: _Markers, namespace: str | None, where: str) -> Any:
        markers.allow(where, "Decimal", "AvroDecimal", "Fixed")
        if markers.decimal is None:
            raise SchemaError(
                f"{where}: a Decimal needs its precision and scale, e.g. "
                "Annotated[Decimal, AvroDecimal(10, 2)]"
            )
        logical = {
            "logicalType": "decimal",
            "precision": markers.decimal.precision,
            "scale": markers.decimal.scale,
        }
        if markers.fixed is not None:
            return self.fixed(markers.fixed, logical, namespace, where)
        return {"type": "bytes", **logical}

    def fixed(
        self, marker: Fixed, logical: dict[str, Any] | None, namespace: str | None, where: str
    ) -> Any:
        own = marker.namespace if marker.namespace is not None else namespace
        known, full = self.define(full_name(marker.name, own), (marker, logical), where, namespace)
        if known:
            return full
        node: dict[str, Any] = {"type": "fixed", "name": full}
        if "." not in full and namespace:
            node["namespace"] = ""
        if marker.doc is not None:
            node["doc"] = marker.doc
        if marker.aliases:
            inner = full.rpartition(".")[0] or None
            node["aliases"] = [full_name(alias, inner) for alias in marker.aliases]
        node["size"] = marker.size
        if logical:
            node.update(logical)
        self.definitions[full] = node
        return node

    def enum(self, cls: type[Enum], namespace: str | None, where: str) -> Any:
        options = cls.__dict__.get("__avro_options__")
        if not isinstance(options, EnumOptions):
            options = EnumOptions(name=cls.__name__, namespace=namespace)
        known, full = self.define(full_name(options.name, options.namespace), cls, where, namespace)
        if known:
            return full
        symbols = []
        for member in cls:
            if not isinstance(member.value, str) or not is_valid_name(member.value):
                raise SchemaError(
                    f"{where}: {cls.__name__}.{member.name} = {member.value!r}: an Avro enum "
                    "symbol is a str matching [A-Za-z_][A-Za-z0-9_]*"
                )
            symbols.append(member.value)
        node: dict[str, Any] = {"type": "enum", "name": full}
        if "." not in full and namespace:
            node["namespace"] = ""
        doc = options.doc if options.doc is not None else clean_doc(cls.__dict__.get("__doc__"))
        if doc is not None:
            node["doc"] = doc
        if options.aliases:
            inner = full.rpartition(".")[0] or None
            node["aliases"] = [full_name(alias, inner) for alias in options.aliases]
        node["symbols"] = symbols
        if options.default is not None:
            if options.default not in symbols:
                raise SchemaError(f"{where}: enum default {options.default!r} is not a symbol")
            node["default"] = options.default
        self.definitions[full] = node
        return node

    def union(
        self,
        members: tuple[Any, ...],
        meta: tuple[Any, ...],
        namespace: str | None,
        where: str,
        default: Any,
    ) -> list[Any]:
        non_null = [m for m in members if m is not None and m is not types.NoneType]
        if _Markers.of(meta).present() and len(non_null) != 1:
            raise SchemaError(f"{where}: put type markers on a union's members, not the union")
        ordered = self.order(list(members), meta, namespace, where, default)
        branches: list[Any] = []
        seen: dict[str, int] = {}
        for member in ordered:
            node = self.type_of(member, _member_meta(member, meta), namespace, where)
            key = _branch_key(node)
            if key in seen:
                raise SchemaError(f"{where}: the union has two {key} branches, which Avro forbids")
            seen[key] = len(branches)
            branches.append(node)
        return branches

    def order(
        self,
        members: list[Any],
        meta: tuple[Any, ...],
        namespace: str | None,
        where: str,
        default: Any,
    ) -> list[Any]:
        """The Avro branch order of a union's members.

        The default must match the first branch (Avro spec, "Unions"), so: with ``KeepOrder()``
        the annotation's order as it is; otherwise the branch holding a non-null default
        first, or else ``None`` first (``T | None`` is ``["null", T]``, the spec's advice for
        optional values), the others in annotation order.
        """
        nulls = [m for m in members if m is None or m is types.NoneType]
        others = [m for m in members if m is not None and m is not types.NoneType]
        keep = any(isinstance(item, KeepOrder) for item in meta)
        if default is NO_DEFAULT or (default is None and not keep):
            if default is None and not nulls:
                raise SchemaError(f"{where}: default None, but the union has no None")
            return members if keep else nulls + others
        candidates = members[:1] if keep else others
        for member in candidates:
            # Derive the branch on a scratch copy: named types must be defined at their first
            # use in the final order, so the real derivation happens after reordering.
            scratch = self.copy()
            node = scratch.type_of(member, _member_meta(member, meta), namespace, where)
            try:
                defaults.from_python(node, default, scratch.definitions)
            except defaults.DefaultError:
                continue
            if keep:
                return members
            return [member, *[m for m in members if m is not member]]
        which = "the union's first member" if keep else "any of the union's types"
        raise SchemaError(f"{where}: default {default!r} does not fit {which}")


def _member_meta(member: Any, meta: tuple[Any, ...]) -> tuple[Any, ...]:
    """The markers a union passes to a member: all but KeepOrder, none to None."""
    if member is None or member is types.NoneType:
        return ()
    return tuple(item for item in meta if not isinstance(item, KeepOrder))


def _branch_key(node: Any) -> str:
    if isinstance(node, str):
        return node
    if node["type"] in NAMED_TYPES:
        return str(node["name"])
    return str(node["type"])


def _rebuild(model: type[BaseModel], where: str) -> None:
    try:
        model.model_rebuild()
    except Exception as exc:
        raise SchemaError(f"{where}: {model.__name__} is not fully defined: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Derivation:
    """A derived record schema and the Python type behind each named type in it.

    Attributes:
        schema: the normalised record schema.
        origins: full name -> the model class, enum class or ``(Fixed, logical)`` that
            defined it.
        definitions: full name -> the definition of each named type in ``schema``.
    """

    schema: dict[str, Any]
    origins: Mapping[str, object]
    definitions: Mapping[str, dict[str, Any]]


def derive_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The normalised Avro record schema of a pydantic model class.

    Raises:
        SchemaError: see :func:`derive`.
    """
    return derive(model).schema


def derive(model: type[BaseModel]) -> Derivation:
    """Derive the normalised Avro record schema of a pydantic model class.

    Raises:
        SchemaError: a field's type has no Avro equivalent, a marker does not apply, a name is
            not a valid Avro name, or a default does not fit its type; the message names the
            class and field.
    """
    options = _options_of(model, None)
    if options.namespace is not None and not is_valid_namespace(options.namespace):
        raise SchemaError(f"{model.__name__}: {options.namespace!r} is not a valid namespace")
    if not is_valid_name(options.name):
        raise SchemaError(
            f"{model.__name__}: {options.name!r} is not a valid Avro name; pass name=..."
        )
    deriver = _Deriver()
    node = deriver.record(model, None, model.__name__)
    if not isinstance(node, dict):  # pragma: no cover - a derivation starts with a definition
        raise SchemaError(f"{model.__name__}: could not derive a record schema")
    return Derivation(schema=node, origins=deriver.origins, definitions=deriver.definitions)
