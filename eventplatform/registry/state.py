"""The registry's state, and the one deterministic rule that turns a log of commands into it.

:class:`RegistryState` is pure: no I/O, no clock, no randomness. Every backend built on a log
(:mod:`~eventplatform.registry.memory`, :mod:`~eventplatform.registry.kafkalog`) feeds it the
same commands in the same order, so every replica holds the same subjects, versions and ids.

The rule (DESIGN.md decision 5, optimistic concurrency): a command carries ``read_upto``, the
position up to which its writer had applied the log when it decided, and a :class:`Guard`
naming what the decision read. At position ``p`` it is *applied* if nothing it read changed at
a position in ``[read_upto, p)``, and *void* otherwise; its writer, reading its own command
back, learns which and retries a void one on fresh state. "Changed" means an applied command
for one of the guarded subjects (or, for a command on a subject, that subject itself), or an
applied global config or mode command when the guard includes the global config. Void
commands change nothing, so they never void others.

Readers do not re-run a decision: compatibility is never checked here. Applying a register only
checks that it can be applied at all (its version is the next one, its id exists; for an
imported one, its version is above every other and its id is free or holds the same schema),
a net for commands from a faulty writer, which then are void for every reader alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from eventplatform.errors import (
    RegistryError,
    SubjectNotFound,
    VersionNotFound,
)
from eventplatform.registry.base import (
    CompatibilityLevel,
    Mode,
    RegisteredSchema,
    SchemaReference,
    VersionSpec,
)
from eventplatform.registry.commands import (
    Command,
    Delete,
    Init,
    Register,
    SetCompatibility,
    SetMode,
)

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_MODE",
    "Applied",
    "ApplyResult",
    "RegistryState",
    "StoredSchema",
    "Voided",
]

DEFAULT_LEVEL = CompatibilityLevel.BACKWARD
"""The level when neither the subject nor the global config sets one (Confluent's default)."""

DEFAULT_MODE = Mode.READWRITE
"""The mode when neither the subject nor the global config sets one (Confluent's default)."""


@dataclass(frozen=True, slots=True)
class StoredSchema:
    """A schema under its global id; immutable once assigned."""

    schema_id: int
    schema: str
    references: tuple[SchemaReference, ...]
    fingerprint: str
    normalized_fingerprint: str


@dataclass(frozen=True, slots=True)
class Applied:
    """The command at ``position`` changed the state; a register's id is ``schema_id``."""

    position: int
    schema_id: int | None = None


@dataclass(frozen=True, slots=True)
class Voided:
    """The command at ``position`` was void: it changed nothing."""

    position: int
    reason: str


ApplyResult = Applied | Voided


@dataclass(slots=True)
class _Version:
    version: int
    schema_id: int
    deleted: bool = False


class RegistryState:
    """Subjects, versions, ids and compatibility levels, as of a position in the log."""

    def __init__(self) -> None:
        self._position = 0
        self._subjects: dict[str, dict[int, _Version]] = {}
        self._levels: dict[str, CompatibilityLevel] = {}
        self._global_level: CompatibilityLevel | None = None
        self._modes: dict[str, Mode] = {}
        self._global_mode: Mode | None = None
        self._schemas: dict[int, StoredSchema] = {}
        self._ids_by_fingerprint: dict[str, int] = {}
        self._ids_by_normalized: dict[str, int] = {}
        self._id_uses: Counter[int] = Counter()
        self._changed: dict[str, int] = {}
        self._global_changed = -1

    @property
    def position(self) -> int:
        """The next position to apply: every command before it has been applied or voided."""
        return self._position

    # -- the log ---------------------------------------------------------------------------

    def apply(self, position: int, command: Command) -> ApplyResult:
        """Apply (or void) the command found at ``position``.

        Raises:
            ValueError: ``position`` is before :attr:`position` (already applied).
        """
        self._advance(position)
        if isinstance(command, Init):
            return Applied(position)
        if command.read_upto > position:
            return Voided(position, f"read_upto {command.read_upto} is after its own position")
        conflict = self._conflict(command)
        if conflict is not None:
            return Voided(position, conflict)
        match command:
            case Register():
                return self._register(position, command)
            case SetCompatibility():
                return self._set_level(position, command)
            case SetMode():
                return self._set_mode(position, command)
            case Delete():
                return self._delete(position, command)

    def skip(self, position: int, reason: str) -> Voided:
        """Pass over a record that is not a command (void for every reader alike).

        Raises:
            ValueError: ``position`` is before :attr:`position`.
        """
        self._advance(position)
        return Voided(position, reason)

    def advance_to(self, position: int) -> None:
        """Note that the log holds nothing to apply before ``position`` (e.g. control records)."""
        self._position = max(self._position, position)

    def _advance(self, position: int) -> None:
        if position < self._position:
            raise ValueError(f"position {position} is before {self._position}: already applied")
        self._position = position + 1

    def _conflict(self, command: Register | SetCompatibility | SetMode | Delete) -> str | None:
        guard = command.guard
        subjects = set(guard.subjects)
        reads_global = guard.global_config
        if command.subject is None:
            reads_global = True
        else:
            subjects.add(command.subject)
        for subject in sorted(subjects):
            changed = self._changed.get(subject, -1)
            if changed >= command.read_upto:
                return (
                    f"subject {subject!r} changed at {changed}, after read_upto {command.read_upto}"
                )
        if reads_global and self._global_changed >= command.read_upto:
            return (
                f"the global config changed at {self._global_changed}, "
                f"after read_upto {command.read_upto}"
            )
        return None

    def _register(self, position: int, command: Register) -> ApplyResult:
        versions = self._subjects.get(command.subject, {})
        expected = self.next_version(command.subject)
        if command.imported:
            # An imported version may skip numbers, never go back: versions only grow.
            if command.version < expected:
                return Voided(position, f"version {command.version} is below {expected}")
        elif command.version != expected:
            return Voided(position, f"version {command.version} is not the next ({expected})")
        schema_id = command.schema_id
        if command.imported and schema_id is not None and schema_id not in self._schemas:
            self._add_schema(schema_id, command)
        elif command.imported and schema_id is not None:
            held = self._schemas[schema_id]
            if held.normalized_fingerprint != command.normalized_fingerprint:
                return Voided(position, f"schema id {schema_id} holds another schema")
        elif schema_id is None and position in self._schemas:
            # The id a new schema would get, its position, was imported earlier.
            return Voided(position, f"schema id {position} was imported for another schema")
        elif schema_id is None:
            schema_id = position
            self._add_schema(schema_id, command)
        elif schema_id not in self._schemas:
            return Voided(position, f"schema id {schema_id} does not exist")
        versions[command.version] = _Version(command.version, schema_id)
        self._subjects[command.subject] = versions
        self._id_uses[schema_id] += 1
        self._changed[command.subject] = position
        return Applied(position, schema_id)

    def _add_schema(self, schema_id: int, command: Register) -> None:
        self._schemas[schema_id] = StoredSchema(
            schema_id=schema_id,
            schema=command.schema,
            references=command.references,
            fingerprint=command.fingerprint,
            normalized_fingerprint=command.normalized_fingerprint,
        )
        self._ids_by_fingerprint.setdefault(command.fingerprint, schema_id)
        self._ids_by_normalized.setdefault(command.normalized_fingerprint, schema_id)

    def _set_level(self, position: int, command: SetCompatibility) -> ApplyResult:
        if command.subject is None:
            self._global_level = command.level
            self._global_changed = position
        else:
            if command.level is None:
                self._levels.pop(command.subject, None)
            else:
                self._levels[command.subject] = command.level
            self._changed[command.subject] = position
        return Applied(position)

    def _set_mode(self, position: int, command: SetMode) -> ApplyResult:
        if command.subject is None:
            self._global_mode = command.mode
            self._global_changed = position
        else:
            if command.mode is None:
                self._modes.pop(command.subject, None)
            else:
                self._modes[command.subject] = command.mode
            self._changed[command.subject] = position
        return Applied(position)

    def _delete(self, position: int, command: Delete) -> ApplyResult:
        versions = self._subjects.get(command.subject, {})
        for number in command.versions:
            entry = versions.get(number)
            if entry is None or entry.deleted != command.permanent:
                state = "missing" if entry is None else ("live" if not entry.deleted else "deleted")
                return Voided(position, f"version {number} of {command.subject!r} is {state}")
        # Checked again here, not only by the writer: a schema referencing these versions may
        # have been registered (in another subject) after the writer decided.
        referrers = self.referrers(command.subject, command.versions, permanent=command.permanent)
        if referrers:
            return Voided(position, f"referenced by {_pairs(referrers)}")
        for number in command.versions:
            if command.permanent:
                self._id_uses[versions.pop(number).schema_id] -= 1
            else:
                versions[number].deleted = True
        if not versions:
            # Confluent removes a permanently deleted subject's own config and mode with it.
            self._subjects.pop(command.subject, None)
            self._levels.pop(command.subject, None)
            self._modes.pop(command.subject, None)
        self._changed[command.subject] = position
        return Applied(position)

    # -- queries ---------------------------------------------------------------------------

    def subjects(self, *, deleted: bool = False) -> list[str]:
        """Subjects with a live version (or any version, with ``deleted``), sorted."""
        return sorted(
            name
            for name, versions in self._subjects.items()
            if deleted or any(not v.deleted for v in versions.values())
        )

    def versions(self, subject: str, *, deleted: bool = False) -> list[int]:
        """A subject's versions, ascending.

        Raises:
            SubjectNotFound: no such subject, or (without ``deleted``) all its versions deleted.
        """
        found = sorted(v.version for v in self._entries(subject) if deleted or not v.deleted)
        if not found:
            raise _subject_not_found(subject)
        return found

    def version(
        self, subject: str, version: VersionSpec = "latest", *, deleted: bool = False
    ) -> RegisteredSchema:
        """One version of a subject.

        Raises:
            SubjectNotFound: as for :meth:`versions`.
            VersionNotFound: the subject has no such (live, without ``deleted``) version.
            RegistryError: ``version`` is neither "latest" nor a positive integer (42202).
        """
        numbers = self.versions(subject, deleted=deleted)
        if version in ("latest", -1):  # -1 means latest in Confluent's API
            number = numbers[-1]
        elif isinstance(version, int) and not isinstance(version, bool) and version > 0:
            number = version
        else:
            raise RegistryError(
                f"version {version!r} is not 'latest' or a positive integer", error_code=42202
            )
        if number not in numbers:
            raise VersionNotFound(f"subject {subject!r} has no version {number}", error_code=40402)
        return self._registered(subject, self._subjects[subject][number])

    def referrers(
        self, subject: str, versions: Iterable[int], *, permanent: bool
    ) -> list[tuple[str, int]]:
        """The ``(subject, version)`` pairs whose schemas reference one of ``versions``.

        Deleting a referenced version would leave its referrers unparseable, so it is refused
        (Confluent's error 42206). For a soft delete only live referrers count (a soft-deleted
        referrer's versions being gone already); for a permanent one every stored referrer
        does, as soft-deleted schemas can still be read by id. The versions being deleted do
        not count as referrers of one another.
        """
        targets = {(subject, number) for number in versions}
        found = []
        for name, entries in self._subjects.items():
            for entry in entries.values():
                if (name, entry.version) in targets or (entry.deleted and not permanent):
                    continue
                for reference in self._schemas[entry.schema_id].references:
                    if (reference.subject, reference.version) in targets:
                        found.append((name, entry.version))
                        break
        return sorted(found)

    def live_versions(self, subject: str) -> list[RegisteredSchema]:
        """A subject's live versions, ascending; empty for an unknown subject."""
        return [self._registered(subject, v) for v in self._entries(subject) if not v.deleted]

    def find(
        self, subject: str, fingerprint: str, *, normalize: bool, deleted: bool = False
    ) -> RegisteredSchema | None:
        """The newest version of ``subject`` whose schema has this fingerprint, if any."""
        for entry in reversed(self._entries(subject)):
            if entry.deleted and not deleted:
                continue
            stored = self._schemas[entry.schema_id]
            held = stored.normalized_fingerprint if normalize else stored.fingerprint
            if held == fingerprint:
                return self._registered(subject, entry)
        return None

    def known_schema(self, fingerprint: str, *, normalize: bool) -> StoredSchema | None:
        """The schema with this fingerprint that already has an id, if any.

        Ids outlive permanent deletes: registering the schema again gets its old id back.
        """
        index = self._ids_by_normalized if normalize else self._ids_by_fingerprint
        schema_id = index.get(fingerprint)
        return None if schema_id is None else self._schemas[schema_id]

    def schema(self, schema_id: int) -> StoredSchema | None:
        """The schema with this id, while a version (live or soft-deleted) still uses it."""
        if self._id_uses[schema_id] <= 0:
            return None
        return self._schemas.get(schema_id)

    def stored(self, schema_id: int) -> StoredSchema | None:
        """The schema that has (or had) this id, even if no version uses it any more."""
        return self._schemas.get(schema_id)

    def next_version(self, subject: str) -> int:
        """The version a new registration gets: one above every version, deleted or not."""
        return max(self._subjects.get(subject, {}), default=0) + 1

    def level(self, subject: str | None = None) -> CompatibilityLevel:
        """The effective level of ``subject`` (subject → global → BACKWARD), or the global one."""
        if subject is not None and subject in self._levels:
            return self._levels[subject]
        return self._global_level or DEFAULT_LEVEL

    def subject_level(self, subject: str) -> CompatibilityLevel | None:
        """The level set on ``subject`` itself, if any."""
        return self._levels.get(subject)

    def mode(self, subject: str | None = None) -> Mode:
        """The effective mode of ``subject`` (subject → global → READWRITE), or the global one."""
        if subject is not None and subject in self._modes:
            return self._modes[subject]
        return self._global_mode or DEFAULT_MODE

    def subject_mode(self, subject: str) -> Mode | None:
        """The mode set on ``subject`` itself, if any."""
        return self._modes.get(subject)

    def has_versions(self, subject: str | None = None) -> bool:
        """Whether ``subject`` (or, for None, any subject) holds a version, deleted or not."""
        if subject is None:
            return any(self._subjects.values())
        return bool(self._subjects.get(subject))

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain JSON-able data, for comparing replicas and debugging."""
        return {
            "position": self._position,
            "global_level": self._global_level.value if self._global_level else None,
            "subject_levels": {s: lvl.value for s, lvl in sorted(self._levels.items())},
            "global_mode": self._global_mode.value if self._global_mode else None,
            "subject_modes": {s: mode.value for s, mode in sorted(self._modes.items())},
            "subjects": {
                name: [[v.version, v.schema_id, v.deleted] for v in self._entries(name)]
                for name in sorted(self._subjects)
            },
            "schemas": {
                str(sid): {
                    "schema": s.schema,
                    "references": [[r.name, r.subject, r.version] for r in s.references],
                    "fingerprint": s.fingerprint,
                    "normalized_fingerprint": s.normalized_fingerprint,
                    "uses": self._id_uses[sid],
                }
                for sid, s in sorted(self._schemas.items())
            },
        }

    def _entries(self, subject: str) -> list[_Version]:
        return sorted(self._subjects.get(subject, {}).values(), key=lambda v: v.version)

    def _registered(self, subject: str, entry: _Version) -> RegisteredSchema:
        stored = self._schemas[entry.schema_id]
        return RegisteredSchema(
            subject=subject,
            version=entry.version,
            id=entry.schema_id,
            schema=stored.schema,
            references=stored.references,
        )


def _pairs(pairs: Iterable[tuple[str, int]]) -> str:
    return ", ".join(f"{subject!r} version {version}" for subject, version in pairs)


def _subject_not_found(subject: str) -> SubjectNotFound:
    return SubjectNotFound(f"subject {subject!r} not found", error_code=40401)
