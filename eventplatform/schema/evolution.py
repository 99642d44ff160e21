"""How a catalogue's schemas evolve: compared with the registry's versions or a git revision,
and registered only when none of them breaks its subject (:func:`check_and_register`).

Both comparisons produce one :class:`Evolution` per schema: unchanged, new, or a new version
with its structural diff (:mod:`~eventplatform.schema.diff`) and, when it breaks the
compatibility level, the messages of :mod:`eventplatform.registry.compatibility`, which name
the field, the rule and the version.

Against git, the ``.avsc`` files of the catalogue directory are read at a revision with
``git ls-tree`` and ``git show`` (no checkout, so the working tree is untouched) into a
temporary directory and loaded as a catalogue of their own, so references between files
resolve exactly as they did at that revision. Each schema that changed is checked against its
old text with Apache Avro's reader/writer checker, in the directions the level names; the
revision is the only earlier version, so a ``*_TRANSITIVE`` level checks what its plain
counterpart checks.
"""

from __future__ import annotations

import enum
import os
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import avro.errors
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from eventplatform.errors import (
    GitError,
    InvalidSchema,
    SchemaNotFound,
    SchemaParseError,
    SubjectNotFound,
)
from eventplatform.registry.base import CompatibilityLevel, RegisteredSchema, SchemaRegistry
from eventplatform.registry.compatibility import NEW_SCHEMA, directions, explain
from eventplatform.registry.parsing import ParsedSchema, parse_schema
from eventplatform.schema.catalogue import Catalogue, CatalogueEntry, load_catalogue
from eventplatform.schema.diff import SchemaChange, diff_schemas

__all__ = [
    "Evolution",
    "GitError",
    "Registration",
    "Stage",
    "Status",
    "catalogue_at_revision",
    "check_and_register",
    "compare_with_registry",
    "compare_with_revision",
]

#: Told that a stage of work starts (what, how many items); returns what to call per item.
Stage = Callable[[str, int], Callable[[], None]]


class Status(enum.StrEnum):
    """Where a schema stands against what came before it."""

    NEW = "new"
    UNCHANGED = "unchanged"
    CHANGED = "new version"


@dataclass(slots=True)
class Evolution:
    """One catalogue schema against its earlier version.

    Attributes:
        entry: the catalogue entry.
        subject: the registry subject (the full name, against git).
        status: new, unchanged or a new version.
        level: the compatibility level checked (None when nothing was checked).
        against: what it was compared with: ``version 3``, ``HEAD``.
        current: the registered version holding this schema (unchanged, against a registry).
        previous: the latest registered version (a new version, against a registry).
        changes: the structural diff from the earlier version.
        problems: why it breaks ``level``; empty when it does not.
    """

    entry: CatalogueEntry
    subject: str
    status: Status
    level: CompatibilityLevel | None = None
    against: str = ""
    current: RegisteredSchema | None = None
    previous: RegisteredSchema | None = None
    changes: list[SchemaChange] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def breaking(self) -> bool:
        """Whether the schema breaks its subject's compatibility level."""
        return bool(self.problems)


async def compare_with_registry(
    registry: SchemaRegistry,
    entries: Sequence[CatalogueEntry],
    subject_of: Callable[[CatalogueEntry], str],
    *,
    on_each: Callable[[], None] | None = None,
) -> list[Evolution]:
    """Where each entry stands in the registry, without changing anything there.

    Args:
        registry: a started registry.
        entries: the schemas, in registration (dependency) order.
        subject_of: the subject an entry is registered under.
        on_each: called after each entry (progress).

    Raises:
        RegistryError: the registry refused a lookup (RegistryUnavailable when unreachable).
    """
    found: list[Evolution] = []
    for entry in entries:
        subject = subject_of(entry)
        text = entry.resolved_json()
        try:
            current = await registry.lookup(subject, text)
        except SubjectNotFound:
            found.append(Evolution(entry, subject, Status.NEW))
        except SchemaNotFound:
            previous = await registry.get_version(subject, "latest")
            level = await registry.get_compatibility(subject)
            result = await registry.check_compatibility(subject, text)
            found.append(
                Evolution(
                    entry,
                    subject,
                    Status.CHANGED,
                    level=level,
                    against=f"version {previous.version}",
                    previous=previous,
                    changes=diff_schemas(previous.schema, entry.resolved),
                    problems=list(result.messages),
                )
            )
        else:
            found.append(
                Evolution(
                    entry,
                    subject,
                    Status.UNCHANGED,
                    against=f"version {current.version}",
                    current=current,
                )
            )
        if on_each is not None:
            on_each()
    return found


@dataclass(slots=True)
class Registration:
    """What :func:`check_and_register` found and did.

    Attributes:
        evolutions: where each schema stood against the registry before, in entry order.
        registered: the new versions, by subject; empty when a schema breaks its subject's
            level or on a dry run.
    """

    evolutions: list[Evolution]
    registered: dict[str, RegisteredSchema] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        """Every reason a schema breaks its subject's level, as ``subject: message``."""
        return [f"{e.subject}: {message}" for e in self.evolutions for message in e.problems]


def _full_name(entry: CatalogueEntry) -> str:
    return entry.full_name


async def check_and_register(
    registry: SchemaRegistry,
    entries: Sequence[CatalogueEntry],
    subject_of: Callable[[CatalogueEntry], str] = _full_name,
    *,
    dry_run: bool = False,
    stage: Stage | None = None,
) -> Registration:
    """Check every entry against its subject, then register the new and changed ones.

    All or nothing: every schema is compared with the registry and checked against its
    subject's compatibility level first (:func:`compare_with_registry`), and when one breaks
    it nothing is registered. Schemas the subject already holds are left alone.

    Args:
        registry: a started registry.
        entries: the schemas, in registration (dependency) order.
        subject_of: the subject an entry is registered under; default its full name
            (Confluent's RecordNameStrategy).
        dry_run: compare only.
        stage: told when comparing and registering start (progress).

    Raises:
        RegistryError: the registry refused a lookup or a registration (RegistryUnavailable
            when unreachable; IncompatibleSchema when another writer changed the subject's
            level between the check and the registration).
    """
    tick = stage("comparing with the registry", len(entries)) if stage else None
    evolutions = await compare_with_registry(registry, entries, subject_of, on_each=tick)
    done = Registration(evolutions)
    if dry_run or done.problems:
        return done
    pending = [e for e in evolutions if e.status is not Status.UNCHANGED]
    tick = stage("registering", len(pending)) if stage else None
    for evolution in pending:
        done.registered[evolution.subject] = await registry.register(
            evolution.subject, evolution.entry.resolved_json()
        )
        if tick is not None:
            tick()
    return done


def _git(cwd: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False, timeout=60)
    except FileNotFoundError as exc:
        raise GitError("git is not installed (needed for --against-git)") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {' '.join(args)} timed out") from exc
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}"
        raise GitError(f"git {' '.join(args)}: {message}")
    return done.stdout


def catalogue_at_revision(directory: Path, revision: str, workdir: Path) -> Catalogue | None:
    """Load the catalogue ``directory`` held at git ``revision``, written out under ``workdir``.

    Returns:
        The catalogue, or None when the directory held no ``.avsc`` file at the revision.

    Raises:
        GitError: git is missing, ``directory`` is not in a repository, or the revision is
            unknown.
        SchemaParseError: a file at the revision is not a valid schema; the message names it
            as git does (``REV:path/in/repository``).
    """
    directory = directory.resolve()
    top = Path(_git(directory, "rev-parse", "--show-toplevel").decode().strip()).resolve()
    prefix = PurePosixPath(directory.relative_to(top).as_posix())
    try:
        commit_id = _git(top, "rev-parse", "--verify", f"{revision}^{{commit}}").decode().strip()
    except GitError as exc:
        raise GitError(f"{revision!r} is not a commit of the repository at {top}") from exc
    listing = _git(top, "ls-tree", "-r", "-z", "--name-only", commit_id, "--", str(prefix))
    paths = [PurePosixPath(p) for p in listing.decode().split("\0") if p.endswith(".avsc")]
    if not paths:
        return None
    for path in paths:
        target = workdir / path.relative_to(prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_git(top, "show", f"{commit_id}:{path}"))
    try:
        return load_catalogue(workdir)
    except SchemaParseError as exc:
        # Name the file as git does, not as its temporary copy.
        copy, in_git = f"{workdir}{os.sep}", f"{revision}:{'' if prefix.name == '' else prefix}/"
        raise SchemaParseError(
            str(exc).replace(copy, in_git),
            source=exc.source.replace(copy, in_git) if exc.source else None,
            json_path=exc.json_path,
            reason=exc.reason,
        ) from exc


def _parsed(entry: CatalogueEntry) -> ParsedSchema:
    return parse_schema(entry.resolved_json())


def _check_pair(
    reader: ParsedSchema, writer: ParsedSchema, reader_label: str, writer_label: str
) -> list[str]:
    try:
        checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
        result = checker.get_compatibility(reader.avro, writer.avro)
    except avro.errors.AvroException as exc:
        raise InvalidSchema(f"cannot compare {reader_label} with {writer_label}: {exc}") from exc
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    return explain(result, reader.avro, reader_label=reader_label, writer_label=writer_label)


def compare_with_revision(
    catalogue: Catalogue, revision: str, level: CompatibilityLevel
) -> tuple[list[Evolution], list[str]]:
    """Each schema of ``catalogue`` against its text at git ``revision``.

    The catalogue directory is read at the revision as :func:`catalogue_at_revision` does.

    Returns:
        One evolution per entry, and the full names of the types the revision had and the
        catalogue no longer has.

    Raises:
        GitError: git cannot read the revision.
        SchemaParseError: a file at the revision is invalid.
        InvalidSchema: Avro's checker cannot compare an old and a new schema.
    """
    with tempfile.TemporaryDirectory(prefix="eventplatform-git-") as workdir:
        old = catalogue_at_revision(catalogue.root, revision, Path(workdir))
    backward, forward = directions(level)
    label = f"the version at {revision}"
    found: list[Evolution] = []
    for entry in catalogue:
        if old is None or entry.full_name not in old:
            found.append(Evolution(entry, entry.full_name, Status.NEW, against=revision))
            continue
        before = old[entry.full_name]
        new_parsed, old_parsed = _parsed(entry), _parsed(before)
        if new_parsed.normalized_fingerprint == old_parsed.normalized_fingerprint:
            found.append(Evolution(entry, entry.full_name, Status.UNCHANGED, against=revision))
            continue
        problems: list[str] = []
        if backward:
            problems += _check_pair(new_parsed, old_parsed, NEW_SCHEMA, label)
        if forward:
            problems += _check_pair(old_parsed, new_parsed, label, NEW_SCHEMA)
        found.append(
            Evolution(
                entry,
                entry.full_name,
                Status.CHANGED,
                level=level,
                against=revision,
                changes=diff_schemas(before.resolved, entry.resolved),
                problems=problems,
            )
        )
    removed = [e.full_name for e in old or () if e.full_name not in catalogue]
    return found, removed
