"""The schema catalogue: a directory of ``.avsc`` files, one top-level named type each.

Layout (DESIGN.md, "Repository layout")::

    schemas/
      com/example/orders/Currency.avsc       enum com.example.orders.Currency
      com/example/orders/OrderPlaced.avsc    record com.example.orders.OrderPlaced

A file's path must spell its type's full name: namespace folders, then ``<name>.avsc``. A
file may define further named types inline (a record used only by its event) and may
reference types defined in other files by name, as Avro references work within one document
(relative to the enclosing namespace, or by full name).

:func:`load_catalogue` validates every file, resolves the references across files, orders the
entries so that every type comes after the types it uses (the order to register them in), and
builds each entry's *resolved* schema: self-contained, every type from another file inlined at
its first use, which is what a registry without schema references or fastavro can take.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eventplatform.errors import SchemaError, SchemaParseError
from eventplatform.schema.avsc import canonical_form, check_with_fastavro, inline, read_avsc
from eventplatform.schema.names import NAMED_TYPES
from eventplatform.schema.tree import to_plain, validate_schema

__all__ = ["Catalogue", "CatalogueEntry", "load_catalogue"]


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One ``.avsc`` file of the catalogue.

    Attributes:
        path: the file.
        full_name: the full name of the type the file defines at its top level.
        schema: the decoded JSON as written.
        resolved: the normalised, self-contained schema (types of other files inlined).
        references: full names of the types from *other* files it uses, sorted.
        defines: full names of the named types the file defines, its own type first.
    """

    path: Path
    full_name: str
    schema: Any
    resolved: dict[str, Any]
    references: tuple[str, ...]
    defines: tuple[str, ...]

    @property
    def name(self) -> str:
        """The short name of the type."""
        return self.full_name.rpartition(".")[2]

    @property
    def namespace(self) -> str | None:
        """The namespace of the type, None for the null namespace."""
        return self.full_name.rpartition(".")[0] or None

    @property
    def kind(self) -> str:
        """``record``, ``enum`` or ``fixed``."""
        return str(self.resolved["type"])

    def resolved_json(self) -> str:
        """The resolved schema as compact normalised JSON: the text to register."""
        return json.dumps(self.resolved, separators=(",", ":"), ensure_ascii=False)

    def canonical_form(self) -> str:
        """The Parsing Canonical Form of the resolved schema."""
        return canonical_form(self.resolved)


@dataclass(frozen=True, slots=True)
class Catalogue:
    """Every ``.avsc`` under a root, in dependency order (a type after the types it uses).

    Iterating yields :class:`CatalogueEntry` objects; ``catalogue["com.example.Name"]`` looks
    one up by the full name of its top-level type.
    """

    root: Path
    entries: tuple[CatalogueEntry, ...]
    definitions: Mapping[str, dict[str, Any]] = field(repr=False)

    def __iter__(self) -> Iterator[CatalogueEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, full_name: object) -> bool:
        return any(entry.full_name == full_name for entry in self.entries)

    def __getitem__(self, full_name: str) -> CatalogueEntry:
        for entry in self.entries:
            if entry.full_name == full_name:
                return entry
        raise KeyError(full_name)

    @property
    def named_types(self) -> Mapping[str, dict[str, Any]]:
        """Full name -> normalised definition of every named type in any file."""
        return self.definitions


@dataclass(slots=True)
class _File:
    path: Path
    raw: Any
    full_name: str
    schema: Any
    defines: tuple[str, ...]
    references: dict[str, str]  # full name -> JSON path of its first use


def _fail(path: Path, json_path: str | None, reason: str) -> SchemaParseError:
    where = f"{path}: {json_path}: " if json_path else f"{path}: "
    return SchemaParseError(
        f"{where}{reason}", source=str(path), json_path=json_path, reason=reason
    )


def _read(path: Path, root: Path) -> _File:
    raw = read_avsc(path)
    tree = validate_schema(raw, source=str(path), allow_unresolved=True)
    top = tree.schema
    if not isinstance(top, dict) or top.get("type") not in NAMED_TYPES:
        raise _fail(path, "$", "a catalogue file defines one record, enum or fixed at its top")
    full = str(top["name"])
    namespace, _, name = full.rpartition(".")
    expected = Path(*namespace.split("."), f"{name}.avsc") if namespace else Path(f"{name}.avsc")
    actual = path.relative_to(root)
    if actual != expected:
        raise _fail(
            path,
            "$.name",
            f"the file defines {full}, so it belongs at {root / expected} "
            "(folders by namespace, file named after the type)",
        )
    references: dict[str, str] = {}
    for ref, json_path in tree.references:
        if ref in tree.definitions:
            raise _fail(
                path,
                json_path,
                f"{ref} is used before its definition at {tree.definition_paths[ref]} "
                "(Avro requires a named type to be defined before it is referenced)",
            )
        references.setdefault(ref, json_path)
    return _File(path, to_plain(raw), full, top, tuple(tree.definitions), references)


def _order(files: list[_File], owners: Mapping[str, _File], root: Path) -> list[_File]:
    """Depth-first topological order; dependencies visited by full name for stable output."""
    done: set[str] = set()
    active: list[_File] = []
    ordered: list[_File] = []

    def visit(file: _File) -> None:
        if file.full_name in done:
            return
        if file in active:
            cycle = [*active[active.index(file) :], file]
            names = " -> ".join(f.full_name for f in cycle)
            paths = ", ".join(str(f.path.relative_to(root)) for f in cycle[:-1])
            raise _fail(file.path, None, f"reference cycle {names} (files {paths})")
        active.append(file)
        for ref in sorted(file.references):
            visit(owners[ref])
        active.pop()
        done.add(file.full_name)
        ordered.append(file)

    for file in sorted(files, key=lambda f: f.full_name):
        visit(file)
    return ordered


def load_catalogue(root: Path) -> Catalogue:
    """Load every ``.avsc`` file under ``root``.

    Raises:
        SchemaError: ``root`` is not a directory.
        SchemaParseError: a file is not a valid schema, sits at a path that does not match its
            type's full name, defines a type another file defines too, uses a type no file
            defines, or is part of a reference cycle; the message names the file (and the JSON
            path where there is one).
    """
    root = Path(root)
    if not root.is_dir():
        raise SchemaError(f"{root}: not a directory of .avsc files")
    files = [_read(path, root) for path in sorted(root.rglob("*.avsc"))]
    owners: dict[str, _File] = {}
    for file in files:
        for name in file.defines:
            if name in owners:
                raise _fail(file.path, None, f"{name} is already defined in {owners[name].path}")
            owners[name] = file
    for file in files:
        for ref, json_path in file.references.items():
            if ref not in owners:
                raise _fail(
                    file.path, json_path, f"unknown type {ref!r} (no .avsc under {root} defines it)"
                )
    definitions: dict[str, dict[str, Any]] = {}
    entries: list[CatalogueEntry] = []
    for file in _order(files, owners, root):
        resolved = copy.deepcopy(inline(file.schema, definitions))
        tree = validate_schema(resolved, source=str(file.path))
        check_with_fastavro(tree, str(file.path), {})
        for name in file.defines:
            definitions[name] = _find(tree.definitions, name)
        entries.append(
            CatalogueEntry(
                path=file.path,
                full_name=file.full_name,
                schema=file.raw,
                resolved=tree.schema,
                references=tuple(sorted({owners[r].full_name for r in file.references})),
                defines=file.defines,
            )
        )
    return Catalogue(root=root, entries=tuple(entries), definitions=definitions)


def _find(definitions: Mapping[str, dict[str, Any]], name: str) -> dict[str, Any]:
    definition = copy.deepcopy(definitions[name])
    if "." not in name:
        # Inlined into a namespaced record, a null-namespace type must say so explicitly.
        definition["namespace"] = ""
    return definition
