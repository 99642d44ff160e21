"""Parsing registry input into Avro schemas, with references, and the forms used to compare them.

A registry must refuse text that is not a usable Avro schema *before* anything is stored, and
must recognise a schema it already holds however the JSON is laid out. :func:`parse_schema`
does both. It parses with Apache Avro (:mod:`avro.schema`, the model the compatibility checker
works on) and again with fastavro (the model the serde encodes with, which also validates
field defaults against their types, as the Avro specification requires and the Apache parser
does not), so a schema is accepted only if both libraries can use it.

Schema references (Confluent's ``references``: named types imported from another subject's
version) are resolved through a caller-supplied function, depth first, into the same name
table, so ``{"type": "com.acme.Address"}`` in the referring schema finds the type the reference
defines. A reference must define the type it is named after.

Two fingerprints identify a parsed schema (both SHA-256, hex):

``fingerprint``
    The JSON document with keys sorted and whitespace removed, plus the references: the same
    text laid out differently. Used when ``normalize=False``; this is also what Confluent's
    registry compares in that case, since it re-serialises the schema before comparing.
``normalized_fingerprint``
    The *resolution form*, used when ``normalize=True``: Avro's Parsing Canonical Form (Avro
    specification, "Parsing Canonical Form for Schemas": [PRIMITIVES], [FULLNAMES], [STRIP],
    [ORDER], [STRINGS], [INTEGERS], [WHITESPACE]) extended with the attributes the canonical
    form strips but that change what a reader gets: field ``default`` values, ``aliases`` of
    fields and named types (as full names, sorted), the enum ``default``, and logical types
    with their ``precision`` and ``scale``. Docs, custom properties and ``order`` are dropped.
    Pure Parsing Canonical Form would make ``{"type": "long"}`` and a ``timestamp-millis``
    the same schema, and a changed default a no-op re-registration; the same reasoning leads
    Confluent's ``normalize`` to keep these attributes.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import avro.errors
import avro.schema
import fastavro
from avro.name import Names

from eventplatform.errors import InvalidSchema, SchemaNotFound
from eventplatform.registry.base import Schema, SchemaReference

__all__ = ["ParsedSchema", "ReferenceResolver", "parse_schema", "resolution_form"]

ReferenceResolver = Callable[[SchemaReference], Schema]
"""Returns the schema a reference points at; raises :class:`SchemaNotFound` when there is none."""

# Exceptions the two parsers raise on malformed input besides their own error classes: both walk
# the JSON document with plain dict/list access and fail with these on a wrong shape.
_SHAPE_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError)
_LOGICAL_PROPS = ("logicalType", "precision", "scale")


@dataclass(frozen=True, slots=True, eq=False)
class ParsedSchema:
    """A validated schema, ready for compatibility checks and identity comparisons.

    Attributes:
        text: the schema as the registry stores it: the submitted JSON without whitespace, key
            order and content kept.
        references: the references it was parsed with.
        avro: the Apache Avro schema object (references resolved), for the compatibility checker.
        fingerprint: identity of the text, layout-insensitive (``normalize=False``).
        normalized_fingerprint: identity of the resolution form (``normalize=True``).
    """

    text: str
    references: tuple[SchemaReference, ...]
    avro: avro.schema.Schema
    fingerprint: str
    normalized_fingerprint: str

    def identity(self, *, normalize: bool) -> str:
        """The fingerprint two schemas must share to be "the same schema"."""
        return self.normalized_fingerprint if normalize else self.fingerprint


def parse_schema(
    text: str,
    references: Sequence[SchemaReference] = (),
    *,
    resolve: ReferenceResolver | None = None,
    schema_type: str = "AVRO",
) -> ParsedSchema:
    """Parse and validate registry input.

    Args:
        text: the schema, JSON.
        references: named types it imports from other subjects.
        resolve: looks a reference up (in the registry); required when there are references.
        schema_type: only ``"AVRO"`` is supported.

    Raises:
        InvalidSchema: the text is not JSON, not a valid Avro schema, has a default that does
            not match its field's type, or a reference cannot be resolved; the message says
            which and why.
    """
    if schema_type != "AVRO":
        raise InvalidSchema(f"unsupported schema type {schema_type!r}: only AVRO is supported")
    document = _load_json(text, "schema")
    refs = tuple(references)
    context = _ParseContext(resolve)
    for ref in refs:
        context.load_reference(ref, ())
    parsed = context.parse(document, what="schema")
    refs_key = [[r.name, r.subject, r.version] for r in refs]
    exact = _sha256({"schema": document, "references": refs_key}, sort_keys=True)
    normalized = _sha256(
        {"schema": resolution_form(parsed), "references": refs_key}, sort_keys=False
    )
    return ParsedSchema(
        text=json.dumps(document, separators=(",", ":"), ensure_ascii=False),
        references=refs,
        avro=parsed,
        fingerprint=exact,
        normalized_fingerprint=normalized,
    )


class _ParseContext:
    """One name table shared by a schema and everything it references."""

    def __init__(self, resolve: ReferenceResolver | None) -> None:
        self._resolve = resolve
        self._names = Names()
        self._fastavro_names: dict[str, Any] = {}
        self._loaded: set[tuple[str, int]] = set()

    def load_reference(self, ref: SchemaReference, chain: tuple[tuple[str, int], ...]) -> None:
        key = (ref.subject, ref.version)
        where = f"reference {ref.name!r} (subject {ref.subject!r} version {ref.version})"
        if key in chain:
            raise InvalidSchema(f"{where} is part of a reference cycle")
        # A version imported twice (a diamond of references) is parsed once: Avro forbids
        # redefining a name, and both paths mean the same types.
        if key not in self._loaded:
            if self._resolve is None:
                raise InvalidSchema(f"{where} cannot be resolved: no registry to resolve it in")
            try:
                target = self._resolve(ref)
            except SchemaNotFound as exc:
                raise InvalidSchema(f"{where} cannot be resolved: {exc}") from exc
            for nested in target.references:
                self.load_reference(nested, (*chain, key))
            self.parse(_load_json(target.schema, where), what=where)
            self._loaded.add(key)
        # Confluent names an Avro reference after the full name of the type it imports.
        if ref.name not in self._names.names:
            raise InvalidSchema(f"{where} does not define a type named {ref.name!r}")

    def parse(self, document: Any, *, what: str) -> avro.schema.Schema:
        try:
            with warnings.catch_warnings():
                # Avro specification, "Logical Types": a logical type an implementation does
                # not know, or an invalid one, is ignored in favour of the underlying type.
                # Apache Avro's Python parser warns instead (it lacks local-timestamp-*).
                warnings.simplefilter("ignore", avro.errors.IgnoredLogicalType)
                schema = avro.schema.make_avsc_object(document, self._names)
        except (avro.errors.AvroException, *_SHAPE_ERRORS) as exc:
            raise InvalidSchema(f"invalid Avro {what}: {exc}") from exc
        try:
            fastavro.parse_schema(document, named_schemas=self._fastavro_names)
        except (fastavro.schema.SchemaParseException, fastavro.schema.UnknownType) as exc:
            raise InvalidSchema(f"invalid Avro {what}: {exc}") from exc
        except _SHAPE_ERRORS as exc:
            raise InvalidSchema(f"invalid Avro {what}: {exc}") from exc
        return schema


def resolution_form(schema: avro.schema.Schema) -> Any:
    """The JSON value of ``schema``'s resolution form (see the module docstring).

    Named types are written in full at their first occurrence and by full name after, as in
    Parsing Canonical Form, so recursive and shared types have a finite, unique form.
    """
    return _form(schema, set())


def _form(schema: avro.schema.Schema, seen: set[str]) -> Any:
    if isinstance(schema, avro.schema.UnionSchema):
        return [_form(branch, seen) for branch in schema.schemas]
    props = schema.props
    if isinstance(schema, avro.schema.NamedSchema):
        if schema.fullname in seen:
            return schema.fullname
        seen.add(schema.fullname)
        out: dict[str, Any] = {"name": schema.fullname, "type": schema.type}
        if isinstance(schema, avro.schema.RecordSchema):
            out["fields"] = [_field_form(field, seen) for field in schema.fields]
        elif isinstance(schema, avro.schema.EnumSchema):
            out["symbols"] = list(schema.symbols)
            if "default" in props:
                out["default"] = props["default"]
        elif isinstance(schema, avro.schema.FixedSchema):
            out["size"] = schema.size
        aliases = props.get("aliases")
        if isinstance(aliases, list) and aliases:
            space = schema.namespace
            out["aliases"] = sorted(
                a if "." in a or not space else f"{space}.{a}"
                for a in aliases
                if isinstance(a, str)
            )
        out.update(_logical(props))
        return out
    if isinstance(schema, avro.schema.ArraySchema):
        return {"type": "array", "items": _form(schema.items, seen), **_logical(props)}
    if isinstance(schema, avro.schema.MapSchema):
        return {"type": "map", "values": _form(schema.values, seen), **_logical(props)}
    logical = _logical(props)
    return {"type": schema.type, **logical} if logical else schema.type


def _field_form(field: avro.schema.Field, seen: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": field.name, "type": _form(field.type, seen)}
    if field.has_default:
        out["default"] = field.default
    aliases = field.props.get("aliases")
    if isinstance(aliases, list) and aliases:
        out["aliases"] = sorted(a for a in aliases if isinstance(a, str))
    return out


def _logical(props: Any) -> dict[str, Any]:
    return {key: props[key] for key in _LOGICAL_PROPS if key in props}


def _load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidSchema(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from exc
    except TypeError as exc:
        raise InvalidSchema(f"{what} must be a JSON string: {exc}") from exc


def _sha256(value: Any, *, sort_keys: bool) -> str:
    encoded = json.dumps(value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()
