"""The registry protocol implemented once, over any ordered log of commands.

:class:`CommandLogRegistry` holds a :class:`~eventplatform.registry.state.RegistryState` and
answers every :class:`~eventplatform.registry.base.SchemaRegistry` call from it. A subclass
supplies the log: :meth:`~CommandLogRegistry._catch_up` applies what others appended, and
:meth:`~CommandLogRegistry._append` appends one command and reports whether it applied.

Writes follow DESIGN.md decision 5: catch up, decide on that state (parse, look for the schema,
check compatibility, pick version and id), append the decision as a command recording
``read_upto`` and what it read, then read it back. A void command (someone else changed the
subject in between) is decided again on the newer state, after a short random pause so that
racing writers interleave instead of colliding again. Reads catch up first, so a client sees
every write acknowledged before the read began, its own and other processes' alike. Resolving a
schema id the client already knows is answered without I/O: an id's schema never changes.
"""

from __future__ import annotations

import abc
import asyncio
import enum
import logging
import os
import random
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from eventplatform.errors import (
    IncompatibleSchema,
    OperationNotPermitted,
    ReferenceExists,
    RegistryError,
    RegistryUnavailable,
    ResourceStateError,
    SchemaNotFound,
    SettingNotFound,
)
from eventplatform.registry.base import (
    CompatibilityLevel,
    CompatibilityResult,
    Mode,
    RegisteredSchema,
    Schema,
    SchemaReference,
    VersionSpec,
)
from eventplatform.registry.commands import (
    Command,
    Delete,
    Guard,
    Register,
    SetCompatibility,
    SetMode,
)
from eventplatform.registry.compatibility import check_compatibility, is_transitive
from eventplatform.registry.parsing import ParsedSchema, parse_schema
from eventplatform.registry.state import Applied, ApplyResult, RegistryState

__all__ = ["CommandLogRegistry"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_MAX_ID = 2**31 - 1  # ids and versions are Java ints in Confluent's API


class _Phase(enum.Enum):
    NEW = "new"
    STARTED = "started"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class _Decision(Generic[_T]):
    """What a write decided: a command to append (or none), and the answer once it applied."""

    command: Command | None
    answer: Callable[[Applied | None], _T]


class CommandLogRegistry(abc.ABC):
    """A schema registry whose state is the replay of an ordered log of commands.

    Args:
        writer: names this client in the commands it writes (default: host, pid and a random
            suffix), for whoever reads the log.
        max_attempts: how often a write is decided again after its command was void.
    """

    def __init__(self, *, writer: str | None = None, max_attempts: int = 50) -> None:
        self._state = RegistryState()
        self._lock = asyncio.Lock()
        self._phase = _Phase.NEW
        self._writer = writer or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._max_attempts = max_attempts
        self._parsed: dict[int, ParsedSchema] = {}

    # -- what a log supplies ---------------------------------------------------------------

    @abc.abstractmethod
    async def _open(self) -> None:
        """Connect and replay the log into ``self._state``."""

    @abc.abstractmethod
    async def _shutdown(self) -> None:
        """Release what :meth:`_open` acquired."""

    @abc.abstractmethod
    async def _catch_up(self) -> None:
        """Apply every command appended before this call."""

    @abc.abstractmethod
    async def _append(self, command: Command) -> ApplyResult:
        """Append ``command`` after everything applied so far; read up to it and say its fate."""

    @abc.abstractmethod
    def _where(self) -> str:
        """Where the log lives, for error messages."""

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the log and replay it. Calling it again on a started registry does nothing.

        Raises:
            ResourceStateError: the registry was closed.
            RegistryUnavailable: the log cannot be reached.
            ConfigurationError: the log's storage cannot hold it (e.g. a compacted topic).
            RegistryError: the log holds commands of a newer format than this library reads.
        """
        async with self._lock:
            if self._phase is _Phase.CLOSED:
                raise ResourceStateError(f"{type(self).__name__} is closed; create a new one")
            if self._phase is _Phase.NEW:
                await self._open()
                self._phase = _Phase.STARTED

    async def close(self) -> None:
        """Release the log. Idempotent."""
        if self._phase is _Phase.STARTED:
            self._phase = _Phase.CLOSED
            async with self._lock:
                await self._shutdown()
        self._phase = _Phase.CLOSED

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _require_started(self) -> None:
        if self._phase is not _Phase.STARTED:
            when = "before start()" if self._phase is _Phase.NEW else "after close()"
            raise ResourceStateError(f"{type(self).__name__} used {when}")

    # -- writes ----------------------------------------------------------------------------

    async def register(
        self,
        subject: str,
        schema: str,
        *,
        references: tuple[SchemaReference, ...] = (),
        normalize: bool = True,
        schema_id: int | None = None,
        version: int | None = None,
    ) -> RegisteredSchema:
        """Register ``schema`` under ``subject``, or return the live version that holds it.

        A schema the registry already holds under another subject keeps its id. In IMPORT
        mode, ``schema_id`` and ``version`` say which id and version it gets.

        Raises:
            ResourceStateError: used before ``start()`` or after ``close()``.
            InvalidSchema: the text is not a valid Avro schema, or a reference is unknown.
            IncompatibleSchema: it breaks the subject's compatibility level; ``messages``
                name each field, rule and version.
            OperationNotPermitted: the subject is READONLY; an id or version is given outside
                IMPORT mode, or none in it; the imported id holds another schema, or the
                version is not above the subject's others (42205).
            RegistryError: the subject already holds the schema under another id or version,
                or the id or version is out of range (42207).
            RegistryUnavailable: the log cannot be reached, or other writers kept voiding
                this one.
        """
        _check_subject(subject)
        importing = schema_id is not None or version is not None
        for name, number in (("id", schema_id), ("version", version)):
            if number is not None and not 1 <= number <= _MAX_ID:
                raise RegistryError(
                    f"invalid {name} {number} for subject {subject!r}: it must be between 1 and "
                    "2^31-1",
                    error_code=42207,
                )

        def decide(state: RegistryState) -> _Decision[RegisteredSchema]:
            parsed, read = self._parse_input(state, schema, references)
            identity = parsed.identity(normalize=normalize)
            existing = state.find(subject, identity, normalize=normalize)
            if existing is not None:
                # Confluent answers with the version that holds the schema before it looks at
                # the mode, so serializers that register on every start work in READONLY too.
                if schema_id not in (None, existing.id) or version not in (
                    None,
                    existing.version,
                ):
                    raise RegistryError(
                        f"subject {subject!r} already holds this schema as version "
                        f"{existing.version} with id {existing.id}",
                        error_code=42207,
                    )
                return _Decision(None, lambda _: existing)
            _check_register_mode(state, subject, importing=importing)
            if importing:
                return self._decide_import(state, subject, parsed, read, schema_id, version)
            level = state.level(subject)
            result = self._check(state, subject, parsed, level, None)
            if not result.is_compatible:
                raise _incompatible(subject, level, result)
            known = state.known_schema(identity, normalize=normalize)
            number = state.next_version(subject)
            command = Register(
                subject=subject,
                schema=parsed.text,
                references=parsed.references,
                fingerprint=parsed.fingerprint,
                normalized_fingerprint=parsed.normalized_fingerprint,
                version=number,
                schema_id=known.schema_id if known else None,
                read_upto=state.position,
                guard=Guard(
                    subjects=tuple(dict.fromkeys((subject, *read))),
                    global_config=_reads_global(state, subject),
                ),
                writer=self._writer,
            )
            text, refs = (
                (known.schema, known.references) if known else (parsed.text, parsed.references)
            )

            def answer(applied: Applied | None) -> RegisteredSchema:
                # apply() gives every applied register an id: its position, or the one reused.
                assert applied is not None
                assert applied.schema_id is not None
                return RegisteredSchema(
                    subject=subject,
                    version=number,
                    id=applied.schema_id,
                    schema=text,
                    references=refs,
                )

            return _Decision(command, answer)

        return await self._write(f"registering in {subject!r}", decide)

    def _decide_import(
        self,
        state: RegistryState,
        subject: str,
        parsed: ParsedSchema,
        read: list[str],
        schema_id: int | None,
        version: int | None,
    ) -> _Decision[RegisteredSchema]:
        # IMPORT mode keeps the id and version the schema has elsewhere and checks no
        # compatibility: the registry it comes from already did (Confluent's rule).
        next_version = state.next_version(subject)
        number = next_version if version is None else version
        if number < next_version:
            raise OperationNotPermitted(
                f"cannot import version {number} into subject {subject!r}: it already has "
                f"versions up to {next_version - 1} (deleted ones included)",
                error_code=42205,
            )
        text, refs = parsed.text, parsed.references
        if schema_id is not None:
            held = state.stored(schema_id)
            if held is not None and held.normalized_fingerprint != parsed.normalized_fingerprint:
                raise OperationNotPermitted(
                    f"cannot import into subject {subject!r}: schema id {schema_id} already "
                    "holds another schema (an id's schema never changes)",
                    error_code=42205,
                )
            if held is not None:
                text, refs = held.schema, held.references
        command = Register(
            subject=subject,
            schema=parsed.text,
            references=parsed.references,
            fingerprint=parsed.fingerprint,
            normalized_fingerprint=parsed.normalized_fingerprint,
            version=number,
            schema_id=schema_id,
            read_upto=state.position,
            guard=Guard(
                subjects=tuple(dict.fromkeys((subject, *read))),
                global_config=_reads_global(state, subject),
            ),
            writer=self._writer,
            imported=True,
        )

        def answer(applied: Applied | None) -> RegisteredSchema:
            assert applied is not None
            assert applied.schema_id is not None
            return RegisteredSchema(
                subject=subject, version=number, id=applied.schema_id, schema=text, references=refs
            )

        return _Decision(command, answer)

    async def set_compatibility(
        self, level: CompatibilityLevel, subject: str | None = None
    ) -> CompatibilityLevel:
        """Set the level of ``subject``, or the global level when ``subject`` is None.

        Raises:
            ResourceStateError: used before ``start()`` or after ``close()``.
            RegistryError: ``level`` is not a compatibility level (42203).
            OperationNotPermitted: the subject (or, for the global level, the registry) is
                READONLY (42205).
            RegistryUnavailable: the log cannot be reached.
        """
        try:
            chosen = CompatibilityLevel(level)
        except ValueError as exc:
            raise RegistryError(f"invalid compatibility level {level!r}", error_code=42203) from exc
        if subject is not None:
            _check_subject(subject)

        def decide(state: RegistryState) -> _Decision[CompatibilityLevel]:
            _check_writable(state, subject)
            return _Decision(self._set_level(state, subject, chosen), lambda _: chosen)

        return await self._write("setting compatibility", decide)

    async def delete_compatibility(self, subject: str | None = None) -> CompatibilityLevel:
        """Remove the level of ``subject``, or reset the global level to the default (BACKWARD).

        Returns the level removed (for the global level, the one in force before).

        Raises:
            ResourceStateError: used before ``start()`` or after ``close()``.
            SettingNotFound: the subject has no level of its own (40408).
            OperationNotPermitted: the subject (or the registry) is READONLY (42205).
            RegistryUnavailable: the log cannot be reached.
        """

        def decide(state: RegistryState) -> _Decision[CompatibilityLevel]:
            _check_writable(state, subject)
            previous = state.level(None) if subject is None else state.subject_level(subject)
            if previous is None:
                raise _no_subject_level(subject)
            return _Decision(self._set_level(state, subject, None), lambda _: previous)

        return await self._write("deleting compatibility", decide)

    def _set_level(
        self, state: RegistryState, subject: str | None, level: CompatibilityLevel | None
    ) -> SetCompatibility:
        return SetCompatibility(
            subject=subject,
            level=level,
            read_upto=state.position,
            guard=Guard(
                subjects=() if subject is None else (subject,),
                global_config=subject is None or state.subject_mode(subject) is None,
            ),
            writer=self._writer,
        )

    async def set_mode(
        self, mode: Mode, subject: str | None = None, *, force: bool = False
    ) -> Mode:
        """Set the mode of ``subject``, or the global mode when ``subject`` is None.

        Entering IMPORT needs the subject (or, globally, the registry) to have no version,
        deleted ones included, unless ``force``: imported versions cannot go below them.

        Raises:
            ResourceStateError: used before ``start()`` or after ``close()``.
            RegistryError: ``mode`` is not a mode (42204).
            OperationNotPermitted: IMPORT where versions exist, without ``force`` (42205).
            RegistryUnavailable: the log cannot be reached.
        """
        try:
            chosen = Mode(str(mode).upper())
        except ValueError as exc:
            modes = ", ".join(m.value for m in Mode)
            raise RegistryError(
                f"invalid mode {mode!r}; valid modes: {modes}", error_code=42204
            ) from exc
        if subject is not None:
            _check_subject(subject)

        def decide(state: RegistryState) -> _Decision[Mode]:
            if (
                chosen is Mode.IMPORT
                and state.mode(subject) is not Mode.IMPORT
                and not force
                and state.has_versions(subject)
            ):
                where = "the registry" if subject is None else f"subject {subject!r}"
                raise OperationNotPermitted(
                    f"Cannot import since found existing subjects: {where} holds versions "
                    "(deleted ones included); delete them permanently or pass force",
                    error_code=42205,
                )
            return _Decision(self._set_mode(state, subject, chosen), lambda _: chosen)

        return await self._write("setting the mode", decide)

    async def delete_mode(self, subject: str | None = None) -> Mode:
        """Remove the mode of ``subject``, or reset the global mode to READWRITE.

        Returns the mode removed (for the global mode, the one in force before).

        Raises:
            ResourceStateError: used before ``start()`` or after ``close()``.
            SettingNotFound: the subject has no mode of its own (40409).
            RegistryUnavailable: the log cannot be reached.
        """

        def decide(state: RegistryState) -> _Decision[Mode]:
            previous = state.mode(None) if subject is None else state.subject_mode(subject)
            if previous is None:
                raise _no_subject_mode(subject)
            return _Decision(self._set_mode(state, subject, None), lambda _: previous)

        return await self._write("deleting the mode", decide)

    def _set_mode(self, state: RegistryState, subject: str | None, mode: Mode | None) -> SetMode:
        return SetMode(
            subject=subject,
            mode=mode,
            read_upto=state.position,
            guard=Guard(
                subjects=() if subject is None else (subject,), global_config=subject is None
            ),
            writer=self._writer,
        )

    async def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        """Soft-delete a subject's live versions, or remove a soft-deleted subject for good.

        Returns the versions deleted.

        Raises:
            ResourceStateError: used before ``start()`` or after ``close()``.
            SubjectNotFound: no such subject (40401).
            RegistryError: soft delete of a subject already soft-deleted (40404); permanent
                delete of a subject with live versions (40405).
            OperationNotPermitted: the subject is READONLY (42205).
            RegistryUnavailable: the log cannot be reached.
        """

        def decide(state: RegistryState) -> _Decision[list[int]]:
            every = state.versions(subject, deleted=True)
            _check_writable(state, subject)
            live = _live_numbers(state, subject)
            if not permanent and not live:
                raise RegistryError(
                    f"subject {subject!r} was soft deleted; delete it with permanent=True",
                    error_code=40404,
                )
            if permanent and live:
                raise RegistryError(
                    f"subject {subject!r} was not soft deleted before being permanently deleted",
                    error_code=40405,
                )
            versions = every if permanent else live
            _refuse_if_referenced(state, subject, versions, permanent=permanent)
            command = Delete(
                subject=subject,
                versions=tuple(versions),
                permanent=permanent,
                read_upto=state.position,
                guard=Guard(subjects=(subject,), global_config=_reads_global(state, subject)),
                writer=self._writer,
            )
            return _Decision(command, lambda _: list(versions))

        return await self._write(f"deleting {subject!r}", decide)

    async def delete_version(
        self, subject: str, version: VersionSpec, *, permanent: bool = False
    ) -> int:
        """Soft-delete a live version, or remove a soft-deleted one for good; returns its number.

        ``"latest"`` is the latest live version for a soft delete and the latest of all for a
        permanent one.

        Raises:
            ResourceStateError: used before ``start()`` or after ``close()``.
            SubjectNotFound, VersionNotFound: no such subject or version.
            RegistryError: soft delete of a soft-deleted version (40406); permanent delete of
                a live version (40407); a version that is not "latest" or positive (42202).
            OperationNotPermitted: the subject is READONLY (42205).
            RegistryUnavailable: the log cannot be reached.
        """

        def decide(state: RegistryState) -> _Decision[int]:
            soft_latest = version in ("latest", -1) and not permanent
            number = state.version(subject, version, deleted=not soft_latest).version
            _check_writable(state, subject)
            is_live = number in _live_numbers(state, subject)
            if not permanent and not is_live:
                raise RegistryError(
                    f"version {number} of subject {subject!r} was soft deleted; "
                    "delete it with permanent=True",
                    error_code=40406,
                )
            if permanent and is_live:
                raise RegistryError(
                    f"version {number} of subject {subject!r} was not soft deleted before "
                    "being permanently deleted",
                    error_code=40407,
                )
            _refuse_if_referenced(state, subject, (number,), permanent=permanent)
            command = Delete(
                subject=subject,
                versions=(number,),
                permanent=permanent,
                read_upto=state.position,
                guard=Guard(subjects=(subject,), global_config=_reads_global(state, subject)),
                writer=self._writer,
            )
            return _Decision(command, lambda _: number)

        return await self._write(f"deleting a version of {subject!r}", decide)

    async def _write(self, what: str, decide: Callable[[RegistryState], _Decision[_T]]) -> _T:
        self._require_started()
        for attempt in range(1, self._max_attempts + 1):
            async with self._lock:
                self._require_started()
                await self._catch_up()
                decision = decide(self._state)
                if decision.command is None:
                    return decision.answer(None)
                result = await self._append(decision.command)
            if isinstance(result, Applied):
                return decision.answer(result)
            log.debug(
                "%s: command at %d was void (%s); retrying", what, result.position, result.reason
            )
            await asyncio.sleep(random.uniform(0.0, min(0.25, 0.002 * 2**attempt)))
        raise RegistryUnavailable(
            f"{self._where()}: gave up {what} after {self._max_attempts} attempts, "
            "other writers kept changing what it depends on"
        )

    # -- reads -----------------------------------------------------------------------------

    async def lookup(
        self,
        subject: str,
        schema: str,
        *,
        references: tuple[SchemaReference, ...] = (),
        normalize: bool = True,
        deleted: bool = False,
    ) -> RegisteredSchema:
        """The version of ``subject`` that holds ``schema`` (the newest, if several do).

        Raises:
            ResourceStateError: used before ``start()`` or after ``close()``.
            SubjectNotFound: no such subject (40401).
            InvalidSchema: the text is not a valid Avro schema.
            SchemaNotFound: the subject does not hold that schema (40403).
            RegistryUnavailable: the log cannot be reached.
        """
        state = await self._read()
        state.versions(subject, deleted=deleted)
        parsed, _ = self._parse_input(state, schema, references)
        found = state.find(
            subject, parsed.identity(normalize=normalize), normalize=normalize, deleted=deleted
        )
        if found is None:
            raise SchemaNotFound(f"subject {subject!r} does not hold this schema", error_code=40403)
        return found

    async def get_by_id(self, schema_id: int) -> Schema:
        """The schema with global id ``schema_id``; a known id costs no I/O.

        Raises:
            ResourceStateError: used before ``start()`` or after ``close()``.
            SchemaNotFound: no schema has that id (40403).
            RegistryUnavailable: the log cannot be reached.
        """
        self._require_started()
        stored = self._state.schema(schema_id)
        if stored is None:
            stored = (await self._read()).schema(schema_id)
        if stored is None:
            raise SchemaNotFound(f"no schema has id {schema_id}", error_code=40403)
        return Schema(schema=stored.schema, references=stored.references)

    async def get_version(
        self, subject: str, version: VersionSpec = "latest", *, deleted: bool = False
    ) -> RegisteredSchema:
        """One version of a subject (soft-deleted ones only with ``deleted=True``).

        Raises:
            ResourceStateError: used before ``start()`` or after ``close()``.
            SubjectNotFound, VersionNotFound: no such subject or version.
            RegistryError: a version that is not "latest" or positive (42202).
            RegistryUnavailable: the log cannot be reached.
        """
        return (await self._read()).version(subject, version, deleted=deleted)

    async def list_subjects(self, *, deleted: bool = False) -> list[str]:
        """Every subject with a live version (or any, with ``deleted=True``), sorted.

        Raises:
            ResourceStateError: used before ``start()`` or after ``close()``.
            RegistryUnavailable: the log cannot be reached.
        """
        return (await self._read()).subjects(deleted=deleted)

    async def list_versions(self, subject: str, *, deleted: bool = False) -> list[int]:
        """A subject's versions, ascending.

        Raises:
            ResourceStateError: used before ``start()`` or after ``close()``.
            SubjectNotFound: no such subject, or all its versions soft-deleted (40401).
            RegistryUnavailable: the log cannot be reached.
        """
        return (await self._read()).versions(subject, deleted=deleted)

    async def check_compatibility(
        self,
        subject: str,
        schema: str,
        *,
        version: VersionSpec | None = None,
        references: tuple[SchemaReference, ...] = (),
    ) -> CompatibilityResult:
        """Test ``schema`` under the subject's level, against one version or (``None``) the
        versions the level demands. A subject with no live versions is compatible with
        anything, also against ``"latest"`` (Confluent's answer since 7.x).

        Raises:
            ResourceStateError: used before ``start()`` or after ``close()``.
            InvalidSchema: the text is not a valid Avro schema.
            SubjectNotFound, VersionNotFound: ``version`` names a version that does not exist.
            RegistryUnavailable: the log cannot be reached.
        """
        state = await self._read()
        parsed, _ = self._parse_input(state, schema, references)
        if version in ("latest", -1) and not state.live_versions(subject):
            return CompatibilityResult(is_compatible=True)
        return self._check(state, subject, parsed, state.level(subject), version)

    async def get_compatibility(
        self, subject: str | None = None, *, default_to_global: bool = True
    ) -> CompatibilityLevel:
        """The effective level of ``subject`` (subject → global → BACKWARD), or the global one.

        Raises:
            ResourceStateError: used before ``start()`` or after ``close()``.
            SettingNotFound: ``default_to_global=False`` and the subject has no level of its
                own (40408).
            RegistryUnavailable: the log cannot be reached.
        """
        state = await self._read()
        if subject is None or default_to_global:
            return state.level(subject)
        level = state.subject_level(subject)
        if level is None:
            raise _no_subject_level(subject)
        return level

    async def get_mode(self, subject: str | None = None, *, default_to_global: bool = True) -> Mode:
        """The effective mode of ``subject`` (subject → global → READWRITE), or the global one.

        Raises:
            ResourceStateError: used before ``start()`` or after ``close()``.
            SettingNotFound: ``default_to_global=False`` and the subject has no mode of its
                own (40409).
            RegistryUnavailable: the log cannot be reached.
        """
        state = await self._read()
        if subject is None or default_to_global:
            return state.mode(subject)
        mode = state.subject_mode(subject)
        if mode is None:
            raise _no_subject_mode(subject)
        return mode

    async def snapshot(self) -> dict[str, Any]:
        """The whole state, caught up, as plain data (to compare replicas, or to debug).

        Raises:
            ResourceStateError: used before ``start()`` or after ``close()``.
            RegistryUnavailable: the log cannot be reached.
        """
        return (await self._read()).snapshot()

    async def _read(self) -> RegistryState:
        self._require_started()
        async with self._lock:
            self._require_started()
            await self._catch_up()
        # Callers query the state synchronously right away, before any other task can run.
        return self._state

    # -- parsing and checking --------------------------------------------------------------

    def _parse_input(
        self, state: RegistryState, text: str, references: tuple[SchemaReference, ...]
    ) -> tuple[ParsedSchema, list[str]]:
        """Parse registry input; also returns the subjects its references were read from."""
        read: list[str] = []

        def resolve(ref: SchemaReference) -> Schema:
            read.append(ref.subject)
            target = state.version(ref.subject, ref.version, deleted=True)
            return Schema(schema=target.schema, references=target.references)

        return parse_schema(text, references, resolve=resolve), read

    def _parsed_version(self, state: RegistryState, registered: RegisteredSchema) -> ParsedSchema:
        parsed = self._parsed.get(registered.id)
        if parsed is None:
            # An id's schema and references never change, so its parse is cached for good.
            parsed, _ = self._parse_input(state, registered.schema, registered.references)
            self._parsed[registered.id] = parsed
        return parsed

    def _check(
        self,
        state: RegistryState,
        subject: str,
        parsed: ParsedSchema,
        level: CompatibilityLevel,
        version: VersionSpec | None,
    ) -> CompatibilityResult:
        if version is None:
            earlier = state.live_versions(subject)
            if not is_transitive(level):
                earlier = earlier[-1:]
        else:
            earlier = [state.version(subject, version)]
        pairs = [(r.version, self._parsed_version(state, r)) for r in earlier]
        return check_compatibility(parsed, pairs, level)


def _refuse_if_referenced(
    state: RegistryState, subject: str, versions: Sequence[int], *, permanent: bool
) -> None:
    referrers = state.referrers(subject, versions, permanent=permanent)
    if referrers:
        which = ", ".join(f"{name!r} version {version}" for name, version in referrers)
        numbers = ", ".join(str(n) for n in versions)
        raise ReferenceExists(
            f"version {numbers} of subject {subject!r} is referenced by {which}; "
            "delete the referencing versions first",
            error_code=42206,
        )


def _reads_global(state: RegistryState, subject: str) -> bool:
    """Whether a decision about ``subject`` depends on the global level or mode."""
    return state.subject_level(subject) is None or state.subject_mode(subject) is None


def _check_register_mode(state: RegistryState, subject: str, *, importing: bool) -> None:
    # Confluent's checkRegisterMode: READONLY refuses; an id or version is for IMPORT only,
    # and IMPORT takes nothing else. All three are "operation not permitted", 42205.
    mode = state.mode(subject)
    if mode is Mode.READONLY:
        raise OperationNotPermitted(f"Subject {subject!r} is in read-only mode", error_code=42205)
    if importing and mode is not Mode.IMPORT:
        raise OperationNotPermitted(
            f"Subject {subject!r} is not in import mode: an id or version can only be given "
            "in IMPORT mode",
            error_code=42205,
        )
    if not importing and mode is not Mode.READWRITE:
        raise OperationNotPermitted(
            f"Subject {subject!r} is not in read-write mode: in IMPORT mode a registration "
            "gives its id and version",
            error_code=42205,
        )


def _check_writable(state: RegistryState, subject: str | None) -> None:
    if state.mode(subject) is Mode.READONLY:
        where = "the registry" if subject is None else f"Subject {subject!r}"
        raise OperationNotPermitted(f"{where} is in read-only mode", error_code=42205)


def _no_subject_level(subject: str | None) -> SettingNotFound:
    # Confluent's wording (Errors.SUBJECT_LEVEL_COMPATIBILITY_NOT_CONFIGURED_MESSAGE_FORMAT).
    return SettingNotFound(
        f"Subject '{subject}' does not have subject-level compatibility configured",
        error_code=40408,
    )


def _no_subject_mode(subject: str | None) -> SettingNotFound:
    return SettingNotFound(
        f"Subject '{subject}' does not have subject-level mode configured", error_code=40409
    )


def _check_subject(subject: str) -> None:
    if not isinstance(subject, str) or not subject.strip():
        raise RegistryError(f"invalid subject {subject!r}: a subject is a non-empty string")


def _live_numbers(state: RegistryState, subject: str) -> list[int]:
    try:
        return state.versions(subject)
    except SchemaNotFound:
        return []


def _incompatible(
    subject: str, level: CompatibilityLevel, result: CompatibilityResult
) -> IncompatibleSchema:
    first = result.messages[0] if result.messages else "incompatible"
    more = f" (and {len(result.messages) - 1} more)" if len(result.messages) > 1 else ""
    return IncompatibleSchema(
        f"schema breaks {level.value} compatibility of subject {subject!r}: {first}{more}",
        messages=result.messages,
    )
