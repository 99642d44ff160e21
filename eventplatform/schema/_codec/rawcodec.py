"""The raw codec: events to and from fastavro's *raw* values, with logical types done by us.

fastavro spends about half its time in per-value logical-type hooks. The Avro binary of a
logical type *is* the binary of its underlying type (Avro spec, "Logical Types"), so a
schema with every ``logicalType`` (and ``precision``/``scale``) removed writes the same bytes
when it is handed the underlying values: ``str`` for a uuid, epoch days for a date, epoch
milli/microseconds for timestamps, the two's-complement unscaled integer for a decimal.

Per event class, :func:`raw_codec` builds once:

- the raw schema, parsed by fastavro;
- an encoder (Python source compiled once, as attrs and pydantic do) from the instance to
  the raw record, reading attributes directly instead of running ``model_dump``, with the
  bounds of :mod:`eventplatform.schema.limits` checked inline (one comparison or type test
  per field; a value that fails goes to the readable check, which says why);
- a decoder from the raw record to the event. When validation is provably redundant (see
  :func:`eventplatform.schema._codec.rawschema.constructible`) it builds the instances directly,
  as ``model_construct`` does; otherwise it converts the values and runs the validator.

What construction relies on: every value coming out of the decoder already has the exact
Python type pydantic would produce for the field (``UUID``, ``Decimal`` with at most
``precision`` digits and ``scale`` places, UTC-aware ``datetime`` for ``timestamp-*``, naive
for ``local-timestamp-*``, enum members, nested instances); Avro ``int`` is 32-bit and
``fixed`` has its size, so the ``Int32`` and ``Fixed`` constraints hold by construction.
A decimal beyond its precision raises :class:`RawDecodeFallback`, and the caller decodes
again through the validating path, which reports it.

Every conversion reproduces fastavro's own (``fastavro._logical_writers_py`` and
``_logical_readers_py``) so the bytes and values are identical; the tests prove it.
A class gets no codec (``None``) when its schema has a union whose branches share an
underlying type (``long`` and ``timestamp-millis``) or read back as the same Python type with
different conversions: there the raw value alone does not tell which branch was written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Context, Decimal
from enum import Enum
from typing import IO, Any

import fastavro
from pydantic import BaseModel

from eventplatform.errors import SerializationError
from eventplatform.schema._codec import rawvalues
from eventplatform.schema._codec.avroio import Reader, record_reader
from eventplatform.schema._codec.plan import _Planner
from eventplatform.schema._codec.rawschema import (
    constructible,
    encodable,
    logical_signature,
    strip_logical_types,
)
from eventplatform.schema._codec.rawvalues import RawDecodeFallback
from eventplatform.schema.limits import (
    FLOAT32_LIMIT,
    MICROS_MAX,
    MICROS_MIN,
    MILLIS_MAX,
    MILLIS_MIN,
    value_check,
)
from eventplatform.schema.markers import INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN
from eventplatform.schema.names import NAMED_TYPES
from eventplatform.schema.options import field_name
from eventplatform.schema.types import derive

__all__ = ["READ_OPTIONS", "RawCodec", "RawDecodeFallback", "raw_codec"]


@dataclass(frozen=True, slots=True)
class RawCodec:
    """The raw schema and the generated converters of one event class.

    Attributes:
        parsed: the raw schema (logical types removed), parsed by fastavro.
        encode: instance -> the raw record ``schemaless_writer`` takes with ``parsed``.
        decode: raw record ``schemaless_reader`` returned with ``parsed`` (and
            :data:`READ_OPTIONS`; :meth:`read` does both) -> the event. It takes the record
            over (converted values replace raw ones in place, and the dict becomes the
            instance's ``__dict__``); raises :class:`RawDecodeFallback` or any error of a
            conversion when the record needs the validating path.
        constructs: whether ``decode`` builds instances without re-validating.
        signature: :func:`logical_signature` of the class's parsed full schema.
        tagged_unions: whether a union has two or more named branches, so reading needs
            :data:`READ_OPTIONS`.
        reader: reads one raw record from a buffer (:func:`record_reader`).
    """

    parsed: Any
    encode: Callable[[Any], dict[str, Any]]
    decode: Callable[[Any], Any]
    constructs: bool
    signature: tuple[Any, ...]
    tagged_unions: bool
    reader: Reader

    def read(self, buffer: IO[bytes]) -> Any:
        """Read one record from ``buffer`` with the raw schema and decode it.

        Raises:
            RawDecodeFallback: (or any error of fastavro or a conversion) the bytes need the
                full-schema path, which reports what is wrong with them.
        """
        return self.decode(self.reader(buffer))


class _Generator:
    """Writes the encoder and decoder source of one class's record closure."""

    def __init__(self, definitions: Mapping[str, Any], origins: Mapping[str, object]) -> None:
        self.definitions = definitions
        self.origins = origins
        self.names: dict[str, int] = {}
        self.lines: list[str] = []
        self.env: dict[str, Any] = {
            "_EPOCH": rawvalues.EPOCH,
            "_EPOCH_NAIVE": rawvalues.EPOCH_NAIVE,
            "_MS": rawvalues.MS,
            "_US": rawvalues.US,
            "_DAYS_SHIFT": rawvalues.DAYS_SHIFT,
            "_date": date,
            "_td": timedelta,
            "_timestamp": rawvalues.timestamp,
            "_decimal_bytes": rawvalues.decimal_bytes,
            "_decimal_fixed": rawvalues.decimal_fixed,
            "_read_uuid": rawvalues.read_uuid,
            "_D": Decimal,
            "_fb": int.from_bytes,
            "_fallback": rawvalues.fallback,
            "_read_time_millis": rawvalues.read_time_millis,
            "_read_time_micros": rawvalues.read_time_micros,
            "_SerializationError": SerializationError,
            "_refused": rawvalues.refused,
            "_uuid_text": rawvalues.uuid_text,
            **_SLOTS,
            "_Enum": Enum,
            "_new": object.__new__,
        }
        self.constructs = True
        self.tagged_unions = False
        self.pending: list[tuple[int, Mapping[str, Any]]] = []
        self.counter = 0

    def constant(self, value: Any) -> str:
        self.counter += 1
        name = f"_c{self.counter}"
        self.env[name] = value
        return name

    def resolve(self, node: Any) -> Any:
        if isinstance(node, str) and node in self.definitions:
            return self.definitions[node]
        return node

    def record_index(self, node: Mapping[str, Any]) -> int:
        name = node["name"]
        if name not in self.names:
            self.names[name] = len(self.names)
            self.pending.append((self.names[name], node))
        return self.names[name]

    def var(self) -> str:
        self.counter += 1
        return f"v{self.counter}"

    def encode(self, node: Any, v: str, where: str) -> str:
        node = self.resolve(node)
        if isinstance(node, list):
            non_null = [b for b in node if b != "null"]
            if len(non_null) > 1:
                return f"{self.encode_union(node, where)}({v})"
            inner = self.encode(non_null[0], v, where)
            return v if inner == v else f"(None if {v} is None else {inner})"
        if isinstance(node, str):
            return self.primitive(node, v, where)
        kind, logical = node["type"], node.get("logicalType")
        if kind == "record":
            return f"_enc{self.record_index(node)}({v})"
        if kind == "enum":
            origin = self.origins.get(node["name"])
            if isinstance(origin, type) and issubclass(origin, str):
                return v  # a StrEnum member is its symbol to fastavro's enum writer
            return f"({v}.value if isinstance({v}, _Enum) else {v})"
        if kind == "array":
            item = self.var()
            return f"[{self.encode(node['items'], item, where)} for {item} in {v}]"
        if kind == "map":
            key, value = self.var(), self.var()
            inner = self.encode(node["values"], value, where)
            return f"{{{key}: {inner} for {key}, {value} in {v}.items()}}"
        where_c = self.constant(where)
        if logical == "decimal":
            limit = self.constant(10 ** node["precision"])
            scale = node.get("scale", 0)
            if kind == "fixed":
                return f"_decimal_fixed({v}, {scale}, {limit}, {node['size']}, {where_c})"
            return f"_decimal_bytes({v}, {scale}, {limit}, {where_c})"
        # Every other check is one comparison or type test inline; the rare value that fails
        # it goes to the readable check (eventplatform.schema.limits), which says why.
        refuse = f"_refused({self.constant(value_check(node, self.definitions))}, {v}, {where_c})"
        if logical == "uuid":
            # Only a UUID has the integer the text is made of (AttributeError otherwise).
            return f"_uuid_text({v})"
        if logical == "date":
            return f"(({v} if type({v}) is _date else {refuse}).toordinal() - _DAYS_SHIFT)"
        if logical == "time-millis":
            return (
                f"((({v}.hour * 60 + {v}.minute) * 60 + {v}.second) * 1000 "
                f"+ {v}.microsecond // 1000 if {v}.tzinfo is None else {refuse})"
            )
        if logical == "time-micros":
            return (
                f"((({v}.hour * 60 + {v}.minute) * 60 + {v}.second) * 1000000 "
                f"+ {v}.microsecond if {v}.tzinfo is None else {refuse})"
            )
        if logical in ("timestamp-millis", "timestamp-micros"):
            millis = logical.endswith("millis")
            unit = "_MS" if millis else "_US"
            low, high = (MILLIS_MIN, MILLIS_MAX) if millis else (MICROS_MIN, MICROS_MAX)
            units = self.var()
            return (
                f"({units} if {low} <= ({units} := _timestamp({v}, {unit})) <= {high} "
                f"else {refuse})"
            )
        if logical in ("local-timestamp-millis", "local-timestamp-micros"):
            unit = "_MS" if logical.endswith("millis") else "_US"
            return f"((({v} if {v}.tzinfo is None else {refuse}) - _EPOCH_NAIVE) // {unit})"
        return self.primitive(kind, v, where)

    def primitive(self, kind: str, v: str, where: str) -> str:
        """A primitive value, range-checked inline where fastavro would write it silently."""
        if kind not in _RANGES:
            return v
        low, high = _RANGES[kind]
        check = self.constant(value_check(kind, self.definitions))
        return f"({v} if {low} < {v} < {high} else _refused({check}, {v}, {self.constant(where)}))"

    def encode_union(self, branches: list[Any], where: str) -> str:
        """A function writing a value of a union in fastavro's ``(branch, value)`` notation.

        The branch is picked by the same predicates, in the same order, as the encode plan
        of the full path (:mod:`eventplatform.schema._codec.plan`), so both write the same index.
        """
        planner = _Planner(self.definitions, self.origins)
        tags = [planner.tag(self.resolve(b)) for b in branches]
        if len(set(tags)) != len(tags):  # two branches on one underlying type: ambiguous
            raise _NoCodec
        self.counter += 1
        name = f"_union{self.counter}"
        lines = [f"def {name}(v):\n"]
        if "null" in branches:
            lines.append("    if v is None:\n        return None\n")
        for branch, tag in zip(branches, tags, strict=True):
            if branch == "null":
                continue
            check = self.constant(planner.check(branch))
            lines.append(
                f"    if {check}(v):\n        return ({tag!r}, {self.encode(branch, 'v', where)})\n"
            )
        message = self.constant(f"{where}: the value fits no branch of the union")
        lines.append(f"    raise _SerializationError({message})")
        self.lines.append("".join(lines))
        return name

    def decode_union(self, branches: list[Any]) -> str:
        """A function converting what fastavro read for a union (see :meth:`RawCodec.read`).

        With two or more named branches, a named value arrives as ``(full name, value)``;
        every other branch is told apart by the Python type fastavro reads it as, which must
        then be unambiguous or need no conversion.
        """
        resolved = [self.resolve(b) for b in branches if b != "null"]
        named = [b for b in resolved if isinstance(b, dict) and b["type"] in NAMED_TYPES]
        tagged = named if len(named) > 1 else []
        self.tagged_unions = self.tagged_unions or bool(tagged)
        self.counter += 1
        name = f"_union{self.counter}"
        lines = [f"def {name}(v):\n    if v is None:\n        return None\n"]
        if tagged:
            lines.append("    if type(v) is tuple:\n        n, x = v\n")
            for branch in tagged:
                lines.append(
                    f"        if n == {branch['name']!r}:\n"
                    f"            return {self.decode(branch, 'x')}\n"
                )
        groups: dict[type, list[Any]] = {}  # bool first: a bool is also an int
        for branch in resolved:
            if branch not in tagged:
                kind = branch if isinstance(branch, str) else branch["type"]
                groups.setdefault(_READ_TYPES[kind], []).append(branch)
        for pytype, members in sorted(groups.items(), key=lambda item: item[0] is not bool):
            conversions = {self.decode(m, "v") for m in members}
            if len(conversions) != 1:
                raise _NoCodec
            check = self.constant(pytype)
            lines.append(f"    if isinstance(v, {check}):\n        return {conversions.pop()}\n")
        lines.append("    return v")
        self.lines.append("".join(lines))
        return name

    def decode(self, node: Any, v: str) -> str:
        node = self.resolve(node)
        if isinstance(node, list):
            non_null = [b for b in node if b != "null"]
            if len(non_null) > 1:
                return f"{self.decode_union(node)}({v})"
            inner = self.decode(non_null[0], v)
            return v if inner == v else f"(None if {v} is None else {inner})"
        if isinstance(node, str):
            return v
        kind, logical = node["type"], node.get("logicalType")
        if kind == "record":
            return f"_dec{self.record_index(node)}({v})"
        if kind == "enum":
            origin = self.origins.get(node["name"])
            if isinstance(origin, type) and issubclass(origin, Enum):
                members = self.constant({m.value: m for m in origin})
                return f"{members}[{v}]"
            return v
        if kind == "array":
            item = self.var()
            return f"[{self.decode(node['items'], item)} for {item} in {v}]"
        if kind == "map":
            key, value = self.var(), self.var()
            return (
                f"{{{key}: {self.decode(node['values'], value)} for {key}, {value} in {v}.items()}}"
            )
        if logical == "decimal":
            precision = node["precision"]
            context = self.constant(Context(prec=precision))
            limit = self.constant(10**precision)
            # Inline: fastavro's read_decimal, whose context never rounds below the limit.
            u = self.var()
            return (
                f"(_D({u}).scaleb({-node.get('scale', 0)}, {context}) "
                f"if -{limit} < ({u} := _fb({v}, 'big', signed=True)) < {limit} "
                "else _fallback())"
            )
        if logical == "uuid":
            return f"_read_uuid({v})"
        if logical == "date":
            return f"_date.fromordinal({v} + _DAYS_SHIFT)"
        if logical == "time-millis":
            return f"_read_time_millis({v})"
        if logical == "time-micros":
            return f"_read_time_micros({v})"
        if logical is not None and logical.endswith("timestamp-millis"):
            epoch = "_EPOCH_NAIVE" if logical.startswith("local") else "_EPOCH"
            return f"({epoch} + _td(0, 0, 0, {v}))"  # exact: integer milliseconds
        if logical is not None and logical.endswith("timestamp-micros"):
            epoch = "_EPOCH_NAIVE" if logical.startswith("local") else "_EPOCH"
            return f"({epoch} + _td(microseconds={v}))"
        return v

    def records(self) -> None:
        while self.pending:
            index, node = self.pending.pop()
            model = self.origins.get(node["name"])
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise _NoCodec
            attributes = {
                field_name(attr, info, f"{model.__name__}.{attr}"): attr
                for attr, info in model.model_fields.items()
            }
            cls = self.constant(model)
            if all(attributes.get(f["name"]) == f["name"] for f in node["fields"]) and len(
                node["fields"]
            ) == len(attributes):
                self.in_place(index, node, model.__name__, cls, frozenset(attributes))
                continue
            enc, dec, raw = [], [], []
            for field in node["fields"]:
                name, attr = field["name"], attributes[field["name"]]
                where = f"{model.__name__}.{attr}"
                enc.append(f"{name!r}: {self.encode(field['type'], f'o.{attr}', where)}")
                value = self.decode(field["type"], f"r[{name!r}]")
                dec.append(f"{attr!r}: {value}")
                raw.append(f"{name!r}: {value}")
            self.lines.append(f"def _enc{index}(o):\n    return {{{', '.join(enc)}}}")
            if self.constructs:
                fields = self.constant(frozenset(attributes.values()))
                values = f"{{{', '.join(dec)}}}"
                self.lines.append(f"def _dec{index}(r):\n{_make(cls, values, fields)}")
            else:
                # Validated afterwards: nested records stay dicts keyed by Avro names.
                self.lines.append(f"def _dec{index}(r):\n    return {{{', '.join(raw)}}}")

    def in_place(
        self, index: int, node: Mapping[str, Any], model: str, cls: str, fields: frozenset[str]
    ) -> None:
        """Converters for a record whose Avro field names are its attribute names.

        Then the instance's ``__dict__`` copied is the raw record once the converted fields
        are replaced, and the dict fastavro read becomes the instance's ``__dict__``: no
        per-field copying of the values that need no conversion.
        """
        enc, dec = [], []
        for field in node["fields"]:
            name = field["name"]
            key = f"d[{name!r}]"
            value = self.encode(field["type"], key, f"{model}.{name}")
            kind = self.resolve(field["type"])
            if isinstance(kind, str) and kind in _RANGES:  # a check only: no store
                low, high = _RANGES[kind]
                enc.append(f"    if not {low} < {key} < {high}:\n        {key} = {value}\n")
            elif value != key:
                enc.append(f"    d[{name!r}] = {value}\n")
            key = f"r[{name!r}]"
            value = self.decode(field["type"], key)
            if value != key:
                dec.append(f"    r[{name!r}] = {value}\n")
        self.lines.append(
            f"def _enc{index}(o):\n    d = o.__dict__.copy()\n{''.join(enc)}    return d"
        )
        made = _make(cls, "r", self.constant(fields)) if self.constructs else "    return r"
        self.lines.append(f"def _dec{index}(r):\n{''.join(dec)}{made}")


# What BaseModel.model_construct does with every field given, minus its loops: the slot
# setters of BaseModel's four instance attributes, bound once.
_SLOTS = {
    f"_set_{slot.strip('_')}": BaseModel.__dict__[slot].__set__
    for slot in (
        "__dict__",
        "__pydantic_fields_set__",
        "__pydantic_extra__",
        "__pydantic_private__",
    )
}


def _make(cls: str, values: str, fields: str) -> str:
    """Source of an expression building ``cls`` from its field values without validation."""
    return (
        f"    m = _new({cls})\n"
        f"    _set_dict(m, {values})\n"
        f"    _set_pydantic_fields_set(m, set({fields}))\n"
        "    _set_pydantic_extra(m, None)\n"
        "    _set_pydantic_private(m, None)\n"
        "    return m"
    )


# Open bounds of the primitives fastavro writes without complaint beyond their range: its
# compiled writer takes any int for "int" and a float beyond 32-bit range becomes infinity.
_RANGES: dict[str, tuple[str, str]] = {
    "int": (str(INT32_MIN - 1), str(INT32_MAX + 1)),
    "long": (str(INT64_MIN - 1), str(INT64_MAX + 1)),
    "float": (f"-{FLOAT32_LIMIT!r}", repr(FLOAT32_LIMIT)),
}

# The Python type fastavro reads each raw Avro type as; bool is tested before int.
_READ_TYPES: dict[str, type] = {
    "boolean": bool,
    "int": int,
    "long": int,
    "float": float,
    "double": float,
    "string": str,
    "enum": str,
    "bytes": bytes,
    "fixed": bytes,
    "array": list,
    "map": dict,
    "record": dict,
}

READ_OPTIONS: dict[str, bool] = {"return_named_type": True, "return_named_type_override": True}
"""``schemaless_reader`` options the decoder expects: named union branches as tuples when a
union has two or more of them, so the decoder knows which record or enum was written."""


class _NoCodec(Exception):
    """The class's schema needs the full fastavro path."""


def _build(cls: type[BaseModel], schema: Mapping[str, Any]) -> RawCodec | None:
    derivation = derive(cls)
    generator = _Generator(derivation.definitions, derivation.origins)
    generator.constructs = constructible(cls, set())
    if not encodable(cls, set()):
        return None
    try:
        top = generator.record_index(schema)
        generator.records()
    except _NoCodec:
        return None
    source = "\n".join(generator.lines)
    namespace = dict(generator.env)
    exec(compile(source, f"<raw codec of {cls.__qualname__}>", "exec"), namespace)
    decode_record = namespace[f"_dec{top}"]
    if not generator.constructs:
        validate = cls.__pydantic_validator__.validate_python

        def decode(record: dict[str, Any]) -> Any:
            return validate(decode_record(record))
    else:
        decode = decode_record
    try:
        parsed = fastavro.parse_schema(strip_logical_types(schema), named_schemas={})
        full = fastavro.parse_schema(dict(schema), named_schemas={})
    except Exception:  # fastavro took the full schema; whatever it refuses here, the
        return None  # full path still serves the class
    return RawCodec(
        parsed=parsed,
        encode=namespace[f"_enc{top}"],
        decode=decode,
        constructs=generator.constructs,
        signature=logical_signature(full),
        tagged_unions=generator.tagged_unions,
        reader=record_reader(parsed, tagged_unions=generator.tagged_unions),
    )


_MISSING: Any = object()


def raw_codec(cls: Any) -> RawCodec | None:
    """The raw codec of an event class, built once and kept on the class.

    None when the class needs the full fastavro path: custom serializers, field types outside
    the mapping, or a union whose branches cannot be told apart without logical types.

    Raises:
        SchemaError: the class has no valid Avro schema.
    """
    codec = cls.__dict__.get("__avro_raw__", _MISSING)
    if codec is _MISSING:
        codec = _build(cls, cls.__avro_schema__)
        type.__setattr__(cls, "__avro_raw__", codec)
    return codec  # type: ignore[no-any-return]
