"""The schema registry protocol every backend implements, and the values it trades in.

Backends: :mod:`eventplatform.registry.kafkalog` (embedded, the log of commands in a Kafka
topic), :mod:`eventplatform.registry.rest_client` (a client for Confluent-compatible
registries), and :mod:`eventplatform.registry.memory` (a process-local one for tests). All
pass the same contract suite in ``tests/integration/registry/``.

Semantics follow Confluent Schema Registry's REST API
(https://docs.confluent.io/platform/current/schema-registry/develop/api.html): schema ids are
global and stable, versions count from 1 per subject, registering a schema a subject already
holds returns the existing version and id, a soft-deleted version is hidden unless asked for,
and the compatibility level resolves subject → global → BACKWARD.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Literal, Protocol, Self, runtime_checkable

__all__ = [
    "CompatibilityLevel",
    "CompatibilityResult",
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
    ) -> RegisteredSchema:
        """Register ``schema`` under ``subject``, or return the version that already holds it.

        Raises:
            InvalidSchema: the text is not a valid Avro schema.
            IncompatibleSchema: it breaks the subject's compatibility level.
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

        A subject with no versions is compatible with anything.

        Raises:
            InvalidSchema, VersionNotFound.
        """
        ...

    async def get_compatibility(self, subject: str | None = None) -> CompatibilityLevel:
        """The effective level of ``subject`` (falling back to global), or the global level."""
        ...

    async def set_compatibility(
        self, level: CompatibilityLevel, subject: str | None = None
    ) -> CompatibilityLevel:
        """Set the level of ``subject``, or the global level when ``subject`` is None."""
        ...

    async def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        """Soft-delete a subject (or, after a soft delete, remove it permanently).

        Returns the versions deleted.

        Raises:
            SubjectNotFound; RegistryError (40405) for a permanent delete before a soft one.
        """
        ...

    async def delete_version(
        self, subject: str, version: VersionSpec, *, permanent: bool = False
    ) -> int:
        """Soft-delete (or permanently remove) one version; returns its number.

        Raises:
            SubjectNotFound, VersionNotFound; RegistryError (40407) for a permanent delete
            before a soft one.
        """
        ...
