"""Annotation markers that pick an Avro type where a Python type maps to more than one.

Use them inside :data:`typing.Annotated`::

    class Reading(AvroEvent, namespace="com.example.sensors"):
        count: Annotated[int, Int32]                      # Avro int (default for int: long)
        ratio: Annotated[float, Float32]                  # Avro float (default for float: double)
        at: Annotated[AwareDatetime, Millis]              # timestamp-millis (default: micros)
        price: Annotated[Decimal, AvroDecimal(10, 2)]     # decimal on bytes
        fee: Annotated[Decimal, AvroDecimal(10, 2), Fixed(8, name="Fee")]  # decimal on fixed
        digest: Annotated[bytes, Fixed(16, name="MD5")]   # fixed
        sku: Annotated[str, AvroField(aliases=("code",))] # field aliases / sort order
        tag: Annotated[str | None, KeepOrder()]          # ["string", "null"], not null first

Markers that narrow the value space (``Int32``, ``AvroDecimal``, ``Fixed`` on bytes) also add
the matching pydantic constraint, so a value the schema cannot carry is refused when the event
is built, not when it is encoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import GetCoreSchemaHandler
from pydantic_core import CoreSchema

from eventplatform.errors import SchemaError
from eventplatform.schema.names import is_valid_name, is_valid_namespace

__all__ = [
    "AvroDecimal",
    "AvroField",
    "Fixed",
    "Float32",
    "INT32_MAX",
    "INT32_MIN",
    "INT64_MAX",
    "INT64_MIN",
    "Int32",
    "KeepOrder",
    "Micros",
    "Millis",
]

INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

FieldOrder = Literal["ascending", "descending", "ignore"]


def _constrain(schema: CoreSchema, kind: str, marker: str, **constraints: Any) -> CoreSchema:
    """Add pydantic-core constraints to the ``kind`` schema inside ``schema``.

    ``T | None`` arrives as a ``nullable`` wrapper around T's schema; anything else that is not
    ``kind`` means the marker sits on a type it does not apply to.
    """
    if schema["type"] == "nullable":
        return {**schema, "schema": _constrain(schema["schema"], kind, marker, **constraints)}
    if schema["type"] != kind:
        raise SchemaError(f"{marker} does not apply to {schema['type']} (only to {kind})")
    # A plain dict, since the constraint keys differ per TypedDict (int, decimal, bytes schema).
    merged: dict[str, Any] = dict(schema)
    merged.update(constraints)
    return merged


class _Int32:
    """Marker: encode an ``int`` as Avro ``int`` (32-bit) instead of ``long``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Int32"

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return _constrain(handler(source), "int", "Int32", ge=INT32_MIN, le=INT32_MAX)


class _Float32:
    """Marker: encode a ``float`` as Avro ``float`` (32-bit) instead of ``double``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Float32"


class _Unit:
    """Marker: the precision of a ``time`` or ``datetime`` on the wire."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


Int32: Final = _Int32()
"""``Annotated[int, Int32]`` is an Avro ``int``; values outside 32 bits are refused."""

Float32: Final = _Float32()
"""``Annotated[float, Float32]`` is an Avro ``float``; precision beyond 32 bits is lost."""

Millis: Final = _Unit("Millis")
"""``time``/``datetime`` in milliseconds (``time-millis``, ``timestamp-millis``, ...).

Sub-millisecond digits are truncated on the wire.
"""

Micros: Final = _Unit("Micros")
"""``time``/``datetime`` in microseconds; the default, so only needed for emphasis."""


@dataclass(frozen=True, slots=True)
class AvroDecimal:
    """Marker: a ``Decimal`` as Avro ``decimal``: ``precision`` digits, ``scale`` after the point.

    On ``bytes`` by default; add a :class:`Fixed` marker for ``decimal`` on ``fixed``. The
    matching pydantic ``max_digits``/``decimal_places`` constraints are applied.

    Raises:
        SchemaError: precision is not positive or scale is outside ``0..precision`` (Avro
            specification, "Decimal").
    """

    precision: int
    scale: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.precision, int) or self.precision < 1:
            raise SchemaError(f"decimal precision must be a positive int, got {self.precision!r}")
        if not isinstance(self.scale, int) or not 0 <= self.scale <= self.precision:
            raise SchemaError(
                f"decimal scale must be an int in 0..precision ({self.precision}), "
                f"got {self.scale!r}"
            )

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return _constrain(
            handler(source),
            "decimal",
            "AvroDecimal",
            max_digits=self.precision,
            decimal_places=self.scale,
        )


@dataclass(frozen=True, slots=True)
class Fixed:
    """Marker: ``bytes`` (or a decimal) as an Avro ``fixed`` of ``size`` bytes named ``name``.

    ``namespace`` defaults to the enclosing record's. On ``bytes`` the value's length must be
    exactly ``size``.

    Raises:
        SchemaError: the size is negative or a name is not a valid Avro name.
    """

    size: int
    name: str
    namespace: str | None = None
    aliases: Sequence[str] = ()
    doc: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 0:
            raise SchemaError(f"fixed size must be a non-negative int, got {self.size!r}")
        short = self.name.rpartition(".")[2]
        if not is_valid_name(short) or not is_valid_namespace(self.name.rpartition(".")[0]):
            raise SchemaError(f"fixed name {self.name!r} is not a valid Avro name")
        if self.namespace is not None and not is_valid_namespace(self.namespace):
            raise SchemaError(f"fixed namespace {self.namespace!r} is not a valid namespace")
        object.__setattr__(self, "aliases", tuple(self.aliases))

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        schema = handler(source)
        inner = schema["schema"] if schema["type"] == "nullable" else schema
        if inner["type"] == "decimal":
            return schema  # decimal on fixed: AvroDecimal holds the constraints
        return _constrain(schema, "bytes", "Fixed", min_length=self.size, max_length=self.size)


# eq=False (identity hash): typing caches ``Annotated[...]`` by argument *equality*, and unions
# are equal whatever their order (``int | None == None | int``), so an equal marker would let
# ``Annotated[None | int, m]`` come back as an earlier ``Annotated[int | None, m]`` and the
# union order, which is the Avro branch order, would be lost.
@dataclass(frozen=True, slots=True, eq=False)
class AvroField:
    """Marker: Avro attributes of a record field that have no pydantic counterpart.

    Attributes:
        aliases: former names of the field, for schema resolution (Avro spec, "Aliases").
        order: the field's sort order, ``"ascending"`` (Avro's default), ``"descending"`` or
            ``"ignore"``.
    """

    aliases: Sequence[str] = ()
    order: FieldOrder | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "aliases", tuple(self.aliases))
        for alias in self.aliases:
            if not is_valid_name(alias):
                raise SchemaError(f"field alias {alias!r} is not a valid Avro name")
        if self.order not in (None, "ascending", "descending", "ignore"):
            raise SchemaError(
                f"field order must be ascending, descending or ignore: {self.order!r}"
            )


@dataclass(frozen=True, slots=True, eq=False)  # eq=False: see AvroField
class KeepOrder:
    """Marker: the union's Avro branches follow the annotation's order exactly.

    Without it ``None`` goes first (``T | None`` is ``["null", T]``) unless a non-null default
    needs another branch first. ``Annotated[str | None, KeepOrder()]`` is
    ``["string", "null"]``; a default must then match the first branch. Call it: each
    instance is distinct, which keeps typing's cache from mixing up union orders.
    """
