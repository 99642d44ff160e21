"""The exceptions eventplatform raises.

Every error the library raises derives from :class:`EventPlatformError`. Errors from the
layers below (aiokafka, fastavro, aiohttp, asyncpg, subprocesses) are caught at the boundary
and re-raised as the most specific class here, chained with ``from`` so the original stays
visible in the traceback.

``retriable`` tells a caller whether the same call may succeed if tried again later (a broker
or registry that is down) or never will (a schema that is invalid).

Every exception class a caller can meet lives here; modules that used to define their own
re-export them under the old names (``eventplatform.cloudevents.InvalidEventHeaders``). Not
errors, and so not here: the handler signals of :mod:`eventplatform.app.signals` (control flow
a handler raises on purpose), and private exceptions that never leave their module (the fast
codec's fallbacks, the REST server's ``_ApiError``, the default checker's ``DefaultError``,
the aiokafka-typed ``GroupFenced`` that aiokafka's own coordinator must recognise).

The tree::

    EventPlatformError
    ├── ConfigurationError            a setting is unknown, missing or malformed
    │   ├── ConnectorConfigError      a connector instance file is invalid (file, key)
    │   ├── PortInUse                 a port to listen on is taken (port, setting to change)
    │   └── ImportSpecError           a MODULE:ATTRIBUTE spec names nothing importable
    │       └── AppSpecError          a MODULE:APP spec does not name an EventApp
    ├── InitError                     a folder cannot be scaffolded as a deployment
    ├── GitError                      git cannot read the catalogue at a revision
    ├── ResourceStateError            a client used before start() or after close()
    ├── ProvisioningError             no Kafka broker (or test PostgreSQL) could be provided
    │   ├── NoBrokerAvailable         none of the provisioning paths applies
    │   ├── JavaNotFound / JavaTooOld the local-broker path lacks a suitable JVM
    │   ├── BrokerResolutionError     Maven could not resolve the broker jars
    │   ├── BrokerStartError          the broker process exited or did not get ready
    │   └── PostgresStartError        a throwaway PostgreSQL server could not start
    ├── SchemaError                   an Avro schema or event class is invalid
    │   ├── SchemaParseError          an .avsc file cannot be parsed (file, JSON path)
    │   └── SchemaMismatch            a Python event class disagrees with its .avsc
    ├── RegistryError                 the schema registry refused or failed a request
    │   ├── RegistryUnavailable       (retriable) the registry cannot be reached
    │   ├── SchemaNotFound            subject, version or id unknown
    │   │   ├── SubjectNotFound
    │   │   └── VersionNotFound
    │   ├── IncompatibleSchema        refused by the subject's compatibility level
    │   ├── ReferenceExists           a referenced version cannot be deleted
    │   ├── OperationNotPermitted     the registry's mode refuses the write (READONLY, IMPORT)
    │   ├── SettingNotFound           a subject has no compatibility level or mode of its own
    │   ├── InvalidSchema             the registry rejected the schema text
    │   ├── MalformedCommand          a record of the registry's log is not a command
    │   └── UnsupportedFormat         a log command written by a newer eventplatform
    ├── SerializationError            an event could not be encoded
    ├── DeserializationError          bytes could not be decoded (topic, partition, offset)
    │   ├── NotWireFormat             not magic byte 0 + schema id + Avro
    │   ├── TruncatedPayload          the Avro body ends early
    │   ├── CorruptPayload            the Avro body does not match its writer schema
    │   ├── UnknownSchemaId           the registry has no schema with that id
    │   ├── SchemaResolutionError     the writer schema cannot be read as the reader's
    │   └── InvalidEventHeaders       a CloudEvents header is missing or malformed
    ├── IdempotencyStoreError         an idempotency store refused or failed an operation
    │   ├── IdempotencyStoreUnavailable  (retriable) the store cannot be reached
    │   ├── IdempotencyConflict       (retriable) keys locked by another member's batch
    │   └── StoreNotTransactional     a handler asked for a store transaction it does not have
    ├── HandlerTimeout                (retriable) a handler ran past its timeout, was cancelled
    ├── DeadLetterError               a dead letter cannot be found, read or replayed (where)
    ├── ConnectorError                a connector failed or was used wrongly
    │   ├── ConnectorNotFound         no connector type of that name is installed
    │   ├── ConnectorUnavailable      (retriable) the system a connector bridges is unreachable
    │   ├── DeliveryFailed            (retriable) a webhook endpoint did not accept a delivery
    │   ├── UnsafeDestination         a delivery address is loopback/private (SSRF guard)
    │   ├── InvalidPayload            input does not validate into its event type (paths)
    │   │   └── MalformedPayload      input is not well-formed JSON
    │   └── InvalidSignature          a webhook signature or API key does not verify
    └── KafkaError                    a Kafka operation failed
        ├── PublishError              a record was not acknowledged
        │   ├── RecordTooLarge        beyond max_request_size; nothing of its call was sent
        │   ├── PublishTimeout        (retriable) no ack in time: it may have been written
        │   ├── PublishUnavailable    (retriable) the cluster cannot take records now
        │   └── UnknownTopic          (retriable) the topic does not exist (topic)
        ├── ProducerFenced            another instance took over this transactional id
        ├── InstanceFenced            another process joined the group with this instance id
        ├── AuthenticationFailed      the cluster refused the credentials or TLS (principal)
        ├── AuthorizationFailed       an ACL refuses the principal an operation (resource)
        ├── AppError                  an app's credential or ACLs cannot be managed (app)
        │   ├── AppExists             ``apps add`` of a name that has a user or ACLs already
        │   └── AppNotFound           ``apps revoke`` of a name with neither
        └── QueueError                a share-group (queue) operation failed (group, topic)
            ├── SharingUnsupported    the cluster has no share groups (version or feature)
            ├── QueueUnavailable      (retriable) coordinator or partition leader unreachable
            ├── AcknowledgeFailed     the broker refused an acknowledgement (lock lost)
            └── Rejected              a worker rejected an item (the dead letter's error)
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import ClassVar

__all__ = [
    "AcknowledgeFailed",
    "AppError",
    "AppExists",
    "AppNotFound",
    "AppSpecError",
    "AuthenticationFailed",
    "AuthorizationFailed",
    "BrokerResolutionError",
    "BrokerStartError",
    "ConfigurationError",
    "ConnectorConfigError",
    "ConnectorError",
    "ConnectorNotFound",
    "ConnectorUnavailable",
    "CorruptPayload",
    "DeadLetterError",
    "DeliveryFailed",
    "DeserializationError",
    "EventPlatformError",
    "GitError",
    "HandlerTimeout",
    "IdempotencyConflict",
    "IdempotencyStoreError",
    "IdempotencyStoreUnavailable",
    "ImportSpecError",
    "IncompatibleSchema",
    "InitError",
    "InstanceFenced",
    "InvalidEventHeaders",
    "InvalidPayload",
    "InvalidSchema",
    "InvalidSignature",
    "JavaNotFound",
    "JavaTooOld",
    "KafkaError",
    "MalformedCommand",
    "MalformedPayload",
    "NoBrokerAvailable",
    "NotWireFormat",
    "PostgresStartError",
    "PortInUse",
    "ProducerFenced",
    "ProvisioningError",
    "PublishError",
    "PublishTimeout",
    "QueueError",
    "QueueUnavailable",
    "PublishUnavailable",
    "RecordTooLarge",
    "OperationNotPermitted",
    "ReferenceExists",
    "RegistryError",
    "RegistryUnavailable",
    "Rejected",
    "ResourceStateError",
    "SchemaError",
    "SchemaMismatch",
    "SchemaNotFound",
    "SchemaParseError",
    "SchemaResolutionError",
    "SerializationError",
    "SettingNotFound",
    "SharingUnsupported",
    "StoreNotTransactional",
    "SubjectNotFound",
    "TruncatedPayload",
    "UnknownSchemaId",
    "UnknownTopic",
    "UnsafeDestination",
    "UnsupportedFormat",
    "VersionNotFound",
    "map_exceptions",
]


class EventPlatformError(Exception):
    """Root of every error raised by eventplatform."""

    retriable: ClassVar[bool] = False


class ConfigurationError(EventPlatformError):
    """A setting is unknown, missing or malformed; the message names the setting."""


class ConnectorConfigError(ConfigurationError):
    """A connector instance (a ``connectors/*.toml`` file) is invalid.

    Attributes:
        path: the instance file, when there is one.
        key: the dotted key at fault (``settings.port``), when one is.
    """

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.key = key


class PortInUse(ConfigurationError):
    """A port something should listen on is taken by another process.

    Attributes:
        port: the port.
        setting: how to choose another one (an option, a setting or a file key).
    """

    def __init__(self, message: str, *, port: int, setting: str) -> None:
        super().__init__(message)
        self.port = port
        self.setting = setting


class ImportSpecError(ConfigurationError):
    """A ``MODULE:ATTRIBUTE`` spec (an app, an event class, a connector type) names nothing
    usable: it is malformed, its module or attribute cannot be imported, or the object is of
    the wrong kind. The message names the spec and what it was for."""


class AppSpecError(ImportSpecError):
    """A ``MODULE:APP`` spec (``eventplatform serve``, a service connector) does not name an
    :class:`~eventplatform.app.EventApp` (or, with ``--factory``, a function returning one)."""


class InitError(EventPlatformError):
    """A folder or name cannot be scaffolded as a deployment (the message says why)."""


class GitError(EventPlatformError):
    """git could not read the catalogue at a revision (no git, not a repository, bad ref)."""


class ResourceStateError(EventPlatformError):
    """An async resource was used before ``start()`` or after ``close()``."""


class ProvisioningError(EventPlatformError):
    """No Kafka broker (or throwaway PostgreSQL) could be provided for development or tests."""


class NoBrokerAvailable(ProvisioningError):
    """None of the provisioning paths (settings, Docker, Java + Maven) is available."""


class JavaNotFound(ProvisioningError):
    """The local-broker path needs a ``java`` executable and none was found."""


class JavaTooOld(ProvisioningError):
    """The ``java`` found is older than the broker needs."""


class BrokerResolutionError(ProvisioningError):
    """Maven could not resolve the Apache Kafka broker jars."""


class BrokerStartError(ProvisioningError):
    """The broker process exited during start-up or did not become ready in time."""


class PostgresStartError(ProvisioningError):
    """A throwaway PostgreSQL server for tests could not be started.

    The binaries are missing (the message says what to install) or ``initdb`` or the server
    failed (the message ends with the tail of its log).
    """


class SchemaError(EventPlatformError):
    """An Avro schema or a Python event class bound to one is invalid."""


class SchemaParseError(SchemaError):
    """An ``.avsc`` document cannot be parsed; the message names the file and JSON path.

    Attributes:
        source: the file (or ``<schema>`` for text and dicts) the schema came from.
        json_path: where in the document, e.g. ``$.fields[2].type``; None when unknown.
        reason: what is wrong, without the location.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        json_path: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.source = source
        self.json_path = json_path
        self.reason = reason if reason is not None else message


class SchemaMismatch(SchemaError):
    """A Python event class and its ``.avsc`` contract disagree."""


class RegistryError(EventPlatformError):
    """The schema registry refused or failed a request.

    Attributes:
        error_code: Confluent's REST error code where one applies (e.g. 40401, 409).
    """

    def __init__(self, message: str, *, error_code: int | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code


class RegistryUnavailable(RegistryError):
    """The registry could not be reached; the message names its URL or topic."""

    retriable = True


class SchemaNotFound(RegistryError):
    """The subject, version or schema id is unknown to the registry."""


class SubjectNotFound(SchemaNotFound):
    """The subject is unknown (Confluent error code 40401)."""


class VersionNotFound(SchemaNotFound):
    """The subject exists but the version does not (Confluent error code 40402)."""


class IncompatibleSchema(RegistryError):
    """The schema breaks the subject's compatibility level (HTTP 409).

    Attributes:
        messages: one line per incompatibility found (field, rule, earlier version).
    """

    def __init__(
        self, message: str, *, messages: list[str] | None = None, error_code: int | None = 409
    ) -> None:
        super().__init__(message, error_code=error_code)
        self.messages = list(messages or [])


class ReferenceExists(RegistryError):
    """A version other schemas reference cannot be deleted (Confluent error code 42206)."""


class OperationNotPermitted(RegistryError):
    """The registry's mode refuses the write (Confluent error code 42205).

    A subject in ``READONLY`` mode refuses registrations and deletes; in ``IMPORT`` mode it
    accepts only registrations that bring their id and version, and in ``READWRITE`` mode only
    those that do not. Change the mode (``set_mode``) to proceed.
    """


class SettingNotFound(RegistryError):
    """A subject has no compatibility level (40408) or mode (40409) of its own.

    It follows the global setting; ask with ``default_to_global=True`` for the one in force.
    """


class InvalidSchema(RegistryError):
    """The registry rejected the schema text (Confluent error code 42201)."""


class MalformedCommand(RegistryError):
    """A record in the registry's log is not a command (every reader voids it alike)."""


class UnsupportedFormat(RegistryError):
    """The registry's log holds a command written by a newer eventplatform than this one."""


class SerializationError(EventPlatformError):
    """An event could not be encoded into its Avro schema.

    Attributes:
        field: the field path at fault (``items[2].unit_price``), when one is known.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class DeserializationError(EventPlatformError):
    """Bytes from Kafka could not be decoded into an event.

    Attributes:
        topic, partition, offset: where the record came from, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.reason = message
        self.topic = topic
        self.partition = partition
        self.offset = offset
        super().__init__(self._describe())

    def _describe(self) -> str:
        if self.topic is None:
            return self.reason
        where = f"topic {self.topic!r}"
        if self.partition is not None:
            where += f", partition {self.partition}"
        if self.offset is not None:
            where += f", offset {self.offset}"
        return f"{where}: {self.reason}"


class NotWireFormat(DeserializationError):
    """The bytes do not start with Confluent's magic byte 0 and a 4-byte schema id."""


class TruncatedPayload(DeserializationError):
    """The Avro body ends before the writer schema says it should."""


class CorruptPayload(DeserializationError):
    """The Avro body does not match its writer schema (bad values or bytes left over)."""


class UnknownSchemaId(DeserializationError):
    """The registry has no schema with the id the record carries."""


class SchemaResolutionError(DeserializationError):
    """The writer schema cannot be resolved to the reader's schema."""


class InvalidEventHeaders(DeserializationError):
    """A record lacks a required CloudEvents header or carries a malformed one."""


class IdempotencyStoreError(EventPlatformError):
    """An idempotency store refused or failed an operation (or was used wrongly)."""


class IdempotencyStoreUnavailable(IdempotencyStoreError):
    """The store's database cannot be reached or failed mid-operation; retry the batch later."""

    retriable = True


class IdempotencyConflict(IdempotencyStoreError):
    """Keys stayed locked by another member's open batch past the lock timeout, or a deadlock.

    The batch was rolled back; retrying it is safe.
    """

    retriable = True


class StoreNotTransactional(IdempotencyStoreError):
    """A handler asked for the idempotency store's transaction, and it has none.

    The store cannot hold the handler's writes (the memory store, or an app built with
    ``inbox=False``), or the handler is ``transactional=True``, whose effects commit in the
    Kafka transaction instead.
    """


class HandlerTimeout(EventPlatformError):
    """A handler ran longer than its timeout and was cancelled; it is retried like a failure.

    Attributes:
        timeout: the limit, in seconds.
    """

    retriable = True

    def __init__(self, message: str, *, timeout: float | None = None) -> None:
        super().__init__(message)
        self.timeout = timeout


class DeadLetterError(EventPlatformError):
    """A dead letter cannot be found, read or replayed; the message names the dead-letter
    topic, partition and offset."""


class ConnectorError(EventPlatformError):
    """A connector failed, or was built or used wrongly."""


class ConnectorNotFound(ConnectorError):
    """No connector type of that name: neither an entry point nor a built-in provides it."""


class ConnectorUnavailable(ConnectorError):
    """The external system a connector bridges (a database, a file system) cannot be reached."""

    retriable = True


class DeliveryFailed(ConnectorError):
    """A webhook endpoint did not accept a delivery (an error status, a timeout, no connection).

    Attributes:
        endpoint: the endpoint's name.
        status: the HTTP status answered, or None when there was no answer.
        attempts: how many attempts were made.
    """

    retriable = True

    def __init__(
        self, message: str, *, endpoint: str, status: int | None = None, attempts: int = 1
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status
        self.attempts = attempts


class UnsafeDestination(ConnectorError):
    """A delivery would go to a loopback, private, link-local or multicast address.

    The webhook egress refuses them unless ``allow_private_addresses`` is set (server-side
    request forgery guard, OWASP SSRF Prevention Cheat Sheet).

    Attributes:
        host: the host name of the URL.
        address: the refused address.
    """

    def __init__(self, message: str, *, host: str, address: str) -> None:
        super().__init__(message)
        self.host = host
        self.address = address


class InvalidPayload(ConnectorError):
    """Input does not validate into its event type.

    Attributes:
        errors: ``(path, reason)`` per violation; ``path`` is JSONPath-like (``$.items[0].sku``).
    """

    def __init__(self, message: str, *, errors: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = list(errors or [])


class MalformedPayload(InvalidPayload):
    """Input is not well-formed JSON (or not UTF-8)."""


class InvalidSignature(ConnectorError):
    """A Standard Webhooks signature, its timestamp, or an API key does not verify."""


class KafkaError(EventPlatformError):
    """A Kafka operation failed."""


class PublishError(KafkaError):
    """A record was not acknowledged by the broker."""


class RecordTooLarge(PublishError):
    """A record exceeds the producer's ``max_request_size``; nothing of its call was sent."""


class PublishTimeout(PublishError):
    """A record was not acknowledged within the delivery timeout: it may have been written.

    A timeout does not mean the event was not written: the broker may have appended it and
    its acknowledgement was late or lost (when a broker was killed, every event of the calls
    that timed out had landed). Retrying with the **same** event ids and idempotency keys is
    safe: consumers deduplicate by idempotency key, so the event takes effect once. Retrying
    with new ids is not: a second copy would be a second event.

    Attributes:
        event_ids: the ids of the events of the call that timed out (empty when unknown, as
            for raw records).
        idempotency_keys: their idempotency keys, in the same order; pass both back to
            ``publish(event, event_id=…, idempotency_key=…)`` (or ``Outgoing``) to retry.
    """

    retriable = True

    def __init__(
        self,
        message: str,
        *,
        event_ids: Sequence[str] = (),
        idempotency_keys: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.event_ids = tuple(event_ids)
        self.idempotency_keys = tuple(idempotency_keys)


class PublishUnavailable(PublishError):
    """The cluster could not take the record now (no leader, too few in-sync replicas, no
    connection); it was not written, and retrying later may succeed."""

    retriable = True


class UnknownTopic(PublishError):
    """The topic does not exist (or is not visible to this client yet).

    Attributes:
        topic: the topic, when known.
    """

    retriable = True

    def __init__(self, message: str, *, topic: str | None = None) -> None:
        super().__init__(message)
        self.topic = topic


class ProducerFenced(KafkaError):
    """Another instance started with this producer's transactional id and fenced it (KIP-98).

    The fenced instance can no longer commit transactions and must stop.
    """


class InstanceFenced(KafkaError):
    """Another process joined the consumer group with this member's instance id (KIP-345).

    Static membership gives each ``group.instance.id`` one member at a time: a second process
    with the same id takes the membership over, and this one must stop rather than take it
    back (which would hand the partitions to and fro between the two).
    """

    def __init__(self, message: str, *, group: str, instance_id: str) -> None:
        super().__init__(message)
        self.group = group
        self.instance_id = instance_id


class AppError(KafkaError):
    """A third-party app's SCRAM credential or ACLs cannot be added, listed or revoked.

    The message says why (no authoriser on the cluster, a mechanism the cluster does not
    support, a refusal of the broker) and never holds the app's password.

    Attributes:
        app: the app's name, when the error concerns one.
    """

    def __init__(self, message: str, *, app: str | None = None) -> None:
        super().__init__(message)
        self.app = app


class AppExists(AppError):
    """``apps add`` of a name that already has a SCRAM credential or ACLs: nothing was written."""


class AppNotFound(AppError):
    """``apps revoke`` of a name that has neither a SCRAM credential nor ACLs."""


class QueueError(KafkaError):
    """A share-group (queue) operation failed; the message names the group and topic.

    Attributes:
        group: the share group, when known.
        error_code: the Kafka protocol error code the broker answered, when one did.
    """

    def __init__(
        self, message: str, *, group: str | None = None, error_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.group = group
        self.error_code = error_code


class SharingUnsupported(QueueError):
    """The cluster has no share groups (KIP-932); the message says what to change.

    The broker is older than Apache Kafka 4.1, or the cluster's feature ``share.version`` is 0.
    """


class QueueUnavailable(QueueError):
    """The group coordinator or a partition leader cannot be reached or is not ready yet."""

    retriable = True


class AcknowledgeFailed(QueueError):
    """The broker refused an acknowledgement.

    Typically the record's acquisition lock expired and the record went back to the queue
    (``INVALID_RECORD_STATE``), or its share session was closed.
    """


class Rejected(QueueError):
    """A worker rejected a queue item (``item.reject(reason)``); dead letters carry it."""


class AuthenticationFailed(KafkaError):
    """The cluster refused this client's credentials (SASL) or it refused the TLS handshake.

    Attributes:
        principal: who tried, as the broker names it (``User:alice``); never the password.
        server: the ``host:port`` that refused.
    """

    def __init__(self, message: str, *, principal: str, server: str) -> None:
        super().__init__(message)
        self.principal = principal
        self.server = server


class AuthorizationFailed(KafkaError):
    """An ACL refuses the principal an operation on a resource (KIP-11 authoriser).

    Attributes:
        principal: who was refused (``User:alice``).
        resource: what it asked for: ``topic:NAME``, ``group:NAME``, ``transactional id:ID``
            or ``cluster``.
    """

    def __init__(self, message: str, *, principal: str, resource: str) -> None:
        super().__init__(message)
        self.principal = principal
        self.resource = resource


def map_exceptions(
    mapping: dict[type[BaseException], type[EventPlatformError]], message: str
) -> AbstractContextManager[None]:
    """Re-raise exceptions from a lower layer as eventplatform errors.

    The first entry of ``mapping`` whose key matches the exception wins, so list the most
    specific classes first. The new error's message is ``message`` followed by the original.

    Raises:
        EventPlatformError: the mapped error, chained to the original.
    """
    return _Mapped(mapping, message)


class _Mapped(AbstractContextManager[None]):
    """:func:`map_exceptions`'s context manager: a class, not a generator, because it wraps
    every statement of a key unit (a generator's enter and exit cost several times more)."""

    __slots__ = ("_mapping", "_message")

    def __init__(
        self, mapping: dict[type[BaseException], type[EventPlatformError]], message: str
    ) -> None:
        self._mapping = mapping
        self._message = message

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or isinstance(exc, EventPlatformError):
            return
        for source, target in self._mapping.items():
            if isinstance(exc, source):
                raise target(f"{self._message}: {exc}") from exc
