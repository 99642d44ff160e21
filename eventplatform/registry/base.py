"""The schema registry protocol every backend implements, and the values it trades in.

Backends: :mod:`eventplatform.registry.kafkalog` (embedded, the log of commands in a Kafka
topic), :mod:`eventplatform.registry.rest_client` (a client for Confluent-compatible
registries), and :mod:`eventplatform.registry.memory` (a process-local one for tests). All
pass the same contract suite in ``tests/integration/registry/``.

Semantics follow Confluent Schema Registry's REST API
(https://docs.confluent.io/platform/current/schema-registry/develop/api.html): schema ids are
global and stable, versions count from 1 per subject, registering a schema a subject already
holds returns the existing version and id, a soft-deleted version is hidden unless asked for,
the compatibility level resolves subject → global → BACKWARD, and the mode (what writes are
allowed: ``READWRITE``, ``READONLY``, ``IMPORT``) resolves subject → global → READWRITE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Literal, Protocol, Self, runtime_checkable

__all__ = [
    "CompatibilityLevel",
    "CompatibilityResult",
    "Mode",
    "RegisteredSchema",
    "Schema",
    "SchemaReference",
    "SchemaRegistry",
    "VersionSpec",
]

VersionSpec = int | Literal["latest"]


class CompatibilityLevel(StrEnum):
    """Confluent's compatibility levels. ``*_TRANSITIVE`` checks every earlier version."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"


class Mode(StrEnum):
    """Confluent's registry modes: which writes a subject (or the registry) accepts.

    ``READWRITE`` (the default) registers schemas under new ids and versions; ``READONLY``
    refuses registrations and deletes (Confluent 42205); ``IMPORT`` accepts only
    registrations that bring their own id and version (migrating a registry, ids intact)
    and checks no compatibility, as Confluent does.
    """

    READWRITE = "READWRITE"
    READONLY = "READONLY"
    IMPORT = "IMPORT"


@dataclass(frozen=True, slots=True)
class SchemaReference:
    """A named type imported from another subject (Confluent ``references`` entry)."""

    name: str
    subject: str
    version: int


@dataclass(frozen=True, slots=True)
class Schema:
    """A schema's text (JSON, Avro) and the references it needs to parse."""

    schema: str
    references: tuple[SchemaReference, ...] = ()
    schema_type: Literal["AVRO"] = "AVRO"


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """A schema as registered under a subject."""

    subject: str
    version: int
    id: int
    schema: str
    references: tuple[SchemaReference, ...] = ()
    schema_type: Literal["AVRO"] = "AVRO"


@dataclass(frozen=True, slots=True)
class CompatibilityResult:
    """Outcome of a compatibility check; ``messages`` name field, rule and version on failure."""

    is_compatible: bool
    messages: list[str] = field(default_factory=list)


@runtime_checkable
class SchemaRegistry(Protocol):
    """What eventplatform needs from a schema registry.

    Implementations are async context managers: ``async with Registry(...) as registry``.
    Every method may raise :class:`~eventplatform.errors.RegistryUnavailable` (retriable) when
    the backend cannot be reached.
    """

    async def start(self) -> None:
        """Connect (and, for the Kafka-log backend, replay the log)."""

    async def close(self) -> None:
        """Release connections. Idempotent."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

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
        """Register ``schema`` under ``subject``, or return the version that already holds it.

        ``schema_id`` and ``version`` import a schema under the id and version it has
        elsewhere; only a subject in ``IMPORT`` mode accepts them, and only such registrations.

        Raises:
            InvalidSchema: the text is not a valid Avro schema.
            IncompatibleSchema: it breaks the subject's compatibility level.
            OperationNotPermitted: the subject's mode refuses this registration (42205), or
                an imported id or version is already taken by another schema.
        """
        ...

    async def lookup(
        self,
        subject: str,
        schema: str,
        *,
        references: tuple[SchemaReference, ...] = (),
        normalize: bool = True,
        deleted: bool = False,
    ) -> RegisteredSchema:
        """The version of ``subject`` that holds ``schema``.

        Raises:
            SubjectNotFound: no such subject.
            SchemaNotFound: the subject does not hold that schema.
        """
        ...

    async def get_by_id(self, schema_id: int) -> Schema:
        """The schema with global id ``schema_id``.

        Raises:
            SchemaNotFound: no schema has that id (Confluent 40403).
        """
        ...

    async def get_version(
        self, subject: str, version: VersionSpec = "latest", *, deleted: bool = False
    ) -> RegisteredSchema:
        """One version of a subject.

        Raises:
            SubjectNotFound, VersionNotFound.
        """
        ...

    async def list_subjects(self, *, deleted: bool = False) -> list[str]:
        """Every subject, sorted; soft-deleted ones only with ``deleted=True``."""
        ...

    async def list_versions(self, subject: str, *, deleted: bool = False) -> list[int]:
        """A subject's versions, ascending.

        Raises:
            SubjectNotFound.
        """
        ...

    async def check_compatibility(
        self,
        subject: str,
        schema: str,
        *,
        version: VersionSpec | None = None,
        references: tuple[SchemaReference, ...] = (),
    ) -> CompatibilityResult:
        """Test ``schema`` against one version, or (``None``) against what the level demands.

        A subject with no versions is compatible with anything, also against ``"latest"``
        (Confluent's answer since 7.x); a numbered version of it is ``SubjectNotFound``.

        Raises:
            InvalidSchema, VersionNotFound.
        """
        ...

    async def get_compatibility(
        self, subject: str | None = None, *, default_to_global: bool = True
    ) -> CompatibilityLevel:
        """The effective level of ``subject`` (falling back to global), or the global level.

        Raises:
            SettingNotFound: ``default_to_global=False`` and the subject has no level of its
                own (Confluent 40408).
        """
        ...

    async def set_compatibility(
        self, level: CompatibilityLevel, subject: str | None = None
    ) -> CompatibilityLevel:
        """Set the level of ``subject``, or the global level when ``subject`` is None."""
        ...

    async def delete_compatibility(self, subject: str | None = None) -> CompatibilityLevel:
        """Remove the level of ``subject`` (it then follows the global one), or reset the
        global level to the default (BACKWARD). Returns the level that was removed.

        Raises:
            SettingNotFound: the subject has no level of its own (40408).
        """
        ...

    async def get_mode(self, subject: str | None = None, *, default_to_global: bool = True) -> Mode:
        """The effective mode of ``subject`` (falling back to global), or the global mode.

        Raises:
            SettingNotFound: ``default_to_global=False`` and the subject has no mode of its
                own (Confluent 40409).
        """
        ...

    async def set_mode(
        self, mode: Mode, subject: str | None = None, *, force: bool = False
    ) -> Mode:
        """Set the mode of ``subject``, or the global mode when ``subject`` is None.

        Raises:
            OperationNotPermitted: entering ``IMPORT`` where schemas exist, without ``force``
                (42205).
            RegistryError: ``mode`` is not a mode (42204).
        """
        ...

    async def delete_mode(self, subject: str | None = None) -> Mode:
        """Remove the mode of ``subject`` (it then follows the global one), or reset the
        global mode to READWRITE. Returns the mode that was removed.

        Raises:
            SettingNotFound: the subject has no mode of its own (40409).
        """
        ...

    async def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        """Soft-delete a subject (or, after a soft delete, remove it permanently).

        Returns the versions deleted.

        Raises:
            SubjectNotFound; RegistryError (40405) for a permanent delete before a soft one;
            OperationNotPermitted (42205) in READONLY mode.
        """
        ...

    async def delete_version(
        self, subject: str, version: VersionSpec, *, permanent: bool = False
    ) -> int:
        """Soft-delete (or permanently remove) one version; returns its number.

        Raises:
            SubjectNotFound, VersionNotFound; RegistryError (40407) for a permanent delete
            before a soft one; OperationNotPermitted (42205) in READONLY mode.
        """
        ...
