"""Compatibility between a new schema and a subject's earlier versions, Confluent's way.

The verdict for each reader/writer pair comes from Apache Avro's own checker,
:class:`avro.compatibility.ReaderWriterCompatibilityChecker` (a port of Java's
``SchemaCompatibility``, which Confluent Schema Registry uses), never from rules written here.
The levels map onto it as in Confluent Schema Registry
(https://docs.confluent.io/platform/current/schema-registry/fundamentals/schema-evolution.html):

=====================  ====================================  ======================
level                  pair(s) checked                       against
=====================  ====================================  ======================
NONE                   nothing                               —
BACKWARD               new reads what old wrote              the latest version
BACKWARD_TRANSITIVE    new reads what old wrote              every version
FORWARD                old reads what new writes             the latest version
FORWARD_TRANSITIVE     old reads what new writes             every version
FULL                   both directions                       the latest version
FULL_TRANSITIVE        both directions                       every version
=====================  ====================================  ======================

Each incompatibility becomes one message naming the field or type, the rule (Avro's
``SchemaIncompatibilityType`` in upper case, as Confluent prints it), the location in the
reader schema, and the version it breaks, e.g. ``reader field 'amount' has no default and is
missing from version 2 (READER_FIELD_MISSING_DEFAULT_VALUE at /fields/3)``.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import avro.errors
import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
    SchemaIncompatibilityType,
)

from eventplatform.errors import InvalidSchema
from eventplatform.registry.base import CompatibilityLevel, CompatibilityResult
from eventplatform.registry.parsing import ParsedSchema

__all__ = ["NEW_SCHEMA", "check_compatibility", "explain", "is_transitive", "directions"]

NEW_SCHEMA = "the new schema"
"""How messages refer to the schema being checked."""

_Kind = SchemaIncompatibilityType
_TYPE_MISMATCH = re.compile(r"^reader type: (\S+) not compatible with writer type: (\S+)$")
_FIXED_SIZE = re.compile(r"^expected: (\d+), found: (\d+)$")
_UNION_BRANCH = re.compile(r"^reader union lacking writer type:? ?(\S+)$")
_FIELD_LOCATION = re.compile(r"/fields/\d+$")


def directions(level: CompatibilityLevel) -> tuple[bool, bool]:
    """``(backward, forward)``: which reader/writer directions ``level`` checks."""
    backward = level.value.startswith(("BACKWARD", "FULL"))
    forward = level.value.startswith(("FORWARD", "FULL"))
    return backward, forward


def is_transitive(level: CompatibilityLevel) -> bool:
    """Whether ``level`` checks every earlier version rather than the latest only."""
    return level.value.endswith("_TRANSITIVE")


def check_compatibility(
    schema: ParsedSchema,
    earlier: Sequence[tuple[int, ParsedSchema]],
    level: CompatibilityLevel,
) -> CompatibilityResult:
    """Check ``schema`` against a subject's earlier versions as ``level`` demands.

    Args:
        schema: the schema being registered or tested.
        earlier: ``(version, schema)`` pairs, ascending, of the versions to consider (the
            subject's live versions; pass a single pair to test against one version).
        level: the compatibility level; non-transitive levels use the last pair only.

    Returns:
        The verdict, with one message per incompatibility (field, rule, version).

    Raises:
        InvalidSchema: Avro's checker cannot compare the two schemas at all (a type it does
            not know, such as a protocol ``error``).
    """
    backward, forward = directions(level)
    if not earlier or not (backward or forward):
        return CompatibilityResult(is_compatible=True)
    targets = earlier if is_transitive(level) else earlier[-1:]
    messages: list[str] = []
    for version, old in targets:
        label = f"version {version}"
        if backward:
            messages += _check_pair(schema.avro, old.avro, NEW_SCHEMA, label)
        if forward:
            messages += _check_pair(old.avro, schema.avro, label, NEW_SCHEMA)
    return CompatibilityResult(is_compatible=not messages, messages=messages)


def _check_pair(
    reader: avro.schema.Schema, writer: avro.schema.Schema, reader_label: str, writer_label: str
) -> list[str]:
    # The checker memoises per (reader, writer) object pair, so each pair gets a fresh one.
    try:
        checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
        result = checker.get_compatibility(reader, writer)
    except avro.errors.AvroException as exc:
        raise InvalidSchema(f"cannot compare {reader_label} with {writer_label}: {exc}") from exc
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    return explain(result, reader, reader_label=reader_label, writer_label=writer_label)


def explain(
    result: SchemaCompatibilityResult,
    reader: avro.schema.Schema,
    *,
    reader_label: str,
    writer_label: str,
) -> list[str]:
    """One sentence per incompatibility in an Avro checker ``result``.

    Apache Avro's Python checker (unlike Java's, which keeps one ``Incompatibility`` object per
    finding) merges the findings of a check into a list of kinds plus unordered *sets* of
    messages and locations. The pairs are recovered here: each kind's message has a fixed shape
    (a bare field name, ``reader type: … not compatible with writer type: …``, ``expected: …``,
    a set of enum symbols, ``reader union lacking writer type …``), each kind's location a fixed
    suffix (``/fields/N``, ``/name``, ``/size``, ``/symbols``, a union branch index), and where
    a kind occurs more than once the location is confirmed by walking the reader schema to it
    (the field there has the message's name, the type there the message's reader type).

    Args:
        result: an incompatible result of ``ReaderWriterCompatibilityChecker``.
        reader: the reader schema of that check, to resolve locations.
        reader_label: how to name the reader (``"the new schema"``, ``"version 2"``).
        writer_label: how to name the writer.
    """
    by_kind: dict[_Kind, list[str]] = {}
    for message in sorted(result.messages):
        by_kind.setdefault(_message_kind(message), []).append(message)
    # "/" also appears when Avro merges a finding with a compatible result (whose location is
    # the root), so it is a candidate only where the reader's root confirms it.
    pool = sorted(loc for loc in result.locations if loc != "/")
    sentences: list[str] = []
    for kind, count in Counter(result.incompatibilities).items():
        messages = by_kind.pop(kind, [])
        findings = [(message, _take_location(kind, message, pool, reader)) for message in messages]
        # Findings whose messages are equal (two fields both changed from int to string)
        # share one entry of the message set: the rest are found from their locations.
        while messages and len(findings) < count:
            extra = _take_duplicate(kind, messages, pool, reader)
            if extra is None:
                break
            findings.append(extra)
        for message, location in findings:
            sentence = _sentence(kind, message, reader_label, writer_label)
            path = _field_path(reader, location) if location else ""
            if path and kind is not _Kind.reader_field_missing_default_value:
                sentence = f"field '{path}': {sentence}"
            where = f" at {location}" if location else ""
            sentences.append(f"{sentence} ({kind.value.upper()}{where})")
    for kind, messages in by_kind.items():  # a message whose kind Avro did not list
        sentences += [f"{message} ({kind.value.upper()})" for message in messages]
    return sentences


def _message_kind(message: str) -> _Kind:
    if message.startswith("reader type: "):
        return _Kind.type_mismatch
    if message.startswith("reader union lacking writer type"):
        return _Kind.missing_union_branch
    if _FIXED_SIZE.match(message):
        return _Kind.fixed_size_mismatch
    if message.startswith("expected: "):
        return _Kind.name_mismatch
    if message.startswith("{"):
        return _Kind.missing_enum_symbols
    return _Kind.reader_field_missing_default_value


def _location_kind(location: str) -> _Kind | None:
    last = location.rsplit("/", 1)[-1]
    suffixes = {
        "name": _Kind.name_mismatch,
        "size": _Kind.fixed_size_mismatch,
        "symbols": _Kind.missing_enum_symbols,
    }
    if last in suffixes:
        return suffixes[last]
    if _FIELD_LOCATION.search(location):
        return _Kind.reader_field_missing_default_value
    if last.isdigit():
        return _Kind.missing_union_branch
    return None  # the location of a type: a type mismatch, or a reader union missing a branch


def _wanted_location_kind(kind: _Kind, message: str) -> _Kind | None:
    if kind is _Kind.type_mismatch or (
        kind is _Kind.missing_union_branch
        and not message.startswith("reader union lacking writer type:")
    ):
        # Avro reports a type mismatch, and a reader union none of whose branches reads the
        # writer's type, at the location of the type itself.
        return None
    return kind


def _take_location(
    kind: _Kind, message: str, pool: list[str], reader: avro.schema.Schema
) -> str | None:
    """The location of one finding, taken out of ``pool``; None when it cannot be told.

    Avro memoises each (reader type, writer type) pair with the location where it first met
    it, and restarts locations at the root inside unions, so a reported location can point
    elsewhere than the finding. Locations are therefore used only where the reader schema
    confirms them; a missing field is otherwise searched for by name.
    """
    wanted = _wanted_location_kind(kind, message)
    candidates = [loc for loc in pool if _location_kind(loc) is wanted]
    if wanted is None:
        candidates.append("/")
    for location in candidates:
        if _confirms(kind, message, _walk(reader, location)):
            if location in pool:
                pool.remove(location)
            return location
    if kind is _Kind.reader_field_missing_default_value:
        found = _required_fields(reader, message)
        return found[0] if len(found) == 1 else None
    return None


def _take_duplicate(
    kind: _Kind, messages: list[str], pool: list[str], reader: avro.schema.Schema
) -> tuple[str, str] | None:
    for message in messages:
        wanted = _wanted_location_kind(kind, message)
        for location in pool:
            if _location_kind(location) is wanted and _confirms(
                kind, message, _walk(reader, location)
            ):
                pool.remove(location)
                return message, location
    return None


def _required_fields(schema: avro.schema.Schema, name: str) -> list[str]:
    """Locations (JSON pointers into the schema) of every field ``name`` without a default."""
    found: list[str] = []
    seen: set[str] = set()

    def visit(node: Any, location: str) -> None:
        if isinstance(node, avro.schema.UnionSchema):
            for i, branch in enumerate(node.schemas):
                visit(branch, f"{location}/{i}")
        elif isinstance(node, avro.schema.RecordSchema) and node.fullname not in seen:
            seen.add(node.fullname)
            for i, member in enumerate(node.fields):
                if member.name == name and not member.has_default:
                    found.append(f"{location}/fields/{i}")
                visit(member.type, f"{location}/fields/{i}/type")
        elif isinstance(node, avro.schema.ArraySchema):
            visit(node.items, f"{location}/items")
        elif isinstance(node, avro.schema.MapSchema):
            visit(node.values, f"{location}/values")

    visit(schema, "")
    return found


def _confirms(kind: _Kind, message: str, node: Any) -> bool:
    if kind is _Kind.reader_field_missing_default_value:
        return isinstance(node, avro.schema.Field) and node.name == message
    if kind is _Kind.type_mismatch:
        match = _TYPE_MISMATCH.match(message)
        return (
            match is not None
            and isinstance(node, avro.schema.Schema)
            and node.type == match.group(1)
        )
    if kind is _Kind.missing_union_branch:
        return isinstance(node, avro.schema.UnionSchema)
    return node is not None


def _field_path(schema: avro.schema.Schema, location: str) -> str:
    """The dotted names of the fields ``location`` passes through (``customer.address``)."""
    parts = location.split("/")
    names = []
    for i, part in enumerate(parts):
        if part == "fields" and i + 1 < len(parts):
            node = _walk(schema, "/".join(parts[: i + 2]))
            if not isinstance(node, avro.schema.Field):
                break
            names.append(node.name)
    return ".".join(names)


def _walk(schema: avro.schema.Schema, location: str) -> Any:
    """The field or type at ``location`` (Avro's path: ``/fields/N/type/items/…``) in ``schema``."""
    node: Any = schema
    parts = [part for part in location.split("/") if part]
    i = 0
    while i < len(parts):
        part = parts[i]
        if part == "fields" and isinstance(node, avro.schema.RecordSchema):
            index = int(parts[i + 1]) if i + 1 < len(parts) and parts[i + 1].isdigit() else -1
            if not 0 <= index < len(node.fields):
                return None
            node = node.fields[index]
            i += 2
            continue
        if part == "type" and isinstance(node, avro.schema.Field):
            node = node.type
        elif part == "items" and isinstance(node, avro.schema.ArraySchema):
            node = node.items
        elif part == "values" and isinstance(node, avro.schema.MapSchema):
            node = node.values
        elif part.isdigit() and isinstance(node, avro.schema.UnionSchema):
            return node  # a union branch index: the finding belongs to the union
        elif part in ("name", "size", "symbols"):
            return node
        else:
            return None
        i += 1
    return node


def _sentence(kind: _Kind, message: str, reader_label: str, writer_label: str) -> str:
    if kind is _Kind.reader_field_missing_default_value:
        of = "" if reader_label == NEW_SCHEMA else f" of {reader_label}"
        return f"reader field '{message}'{of} has no default and is missing from {writer_label}"
    if kind is _Kind.type_mismatch and (match := _TYPE_MISMATCH.match(message)):
        return f"{reader_label} reads {match.group(1)} where {writer_label} writes {match.group(2)}"
    if kind is _Kind.fixed_size_mismatch and (match := _FIXED_SIZE.match(message)):
        return (
            f"fixed type has size {match.group(2)} in {reader_label} "
            f"but {match.group(1)} in {writer_label}"
        )
    if kind is _Kind.name_mismatch:
        expected = message.removeprefix("expected: ")
        return (
            f"{reader_label} names a type differently from '{expected}' in {writer_label} "
            "and has no alias for it"
        )
    if kind is _Kind.missing_enum_symbols:
        symbols = _symbols(message)
        return (
            f"{writer_label} has enum symbols {symbols} that {reader_label} lacks, "
            "and the reader enum has no default"
        )
    if kind is _Kind.missing_union_branch and (match := _UNION_BRANCH.match(message)):
        return (
            f"{reader_label} has a union with no branch for {writer_label}'s "
            f"{match.group(1).lower()}"
        )
    return message


def _symbols(message: str) -> str:
    try:
        parsed = ast.literal_eval(message)
    except (ValueError, SyntaxError):
        return message
    if not isinstance(parsed, set | frozenset):
        return message
    return ", ".join(sorted(str(symbol) for symbol in parsed))
