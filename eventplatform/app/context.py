"""The :class:`Context` a handler receives next to its event.

It tells the handler where the event came from (CloudEvents metadata, topic, partition,
offset, key, attempt) and gives it the two ways to have effects that count once:

- ``await ctx.publish(event)``: publish a derived event. The trace context of the incoming
  event is propagated (W3C ``traceparent``/``tracestate``: unchanged, or, while traced, the
  ``send`` span's, a child of the handler's ``process`` span). Inside a
  ``transactional=True`` handler the record joins the poll's Kafka transaction and is sent
  only if the handler succeeds, so a failed attempt leaves nothing behind.
- ``ctx.transaction``: the idempotency store's unit of this event (the inbox pattern). Writes
  through it commit in the same database transaction that records the idempotency key, and
  roll back when the handler fails.

Derived events get deterministic ids: the ``n``-th publish of a handler call for idempotency
key ``k`` in group ``g`` has ``ce_id = uuid5(g, k, n)``. A handler that runs again (a retry,
or a redelivery after a crash) therefore publishes the *same* events, and consumers downstream
deduplicate them by that id, which is the default idempotency key.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from eventplatform.cloudevents import H_TRACESTATE, EventMetadata
from eventplatform.errors import IdempotencyStoreError, StoreNotTransactional
from eventplatform.idempotency import Unit
from eventplatform.producer import EventProducer, Outgoing, PublishResult
from eventplatform.schema import AvroEvent

__all__ = ["Context", "ProducerPublisher", "Publisher", "derived_event_id"]

# A fixed namespace for the UUIDv5 ids of derived events (RFC 9562 §5.5).
_DERIVED_NAMESPACE = uuid.UUID("5b0f6c1e-2f7a-5d0e-9a51-6f1d2c3b4a59")


def derived_event_id(group: str, idempotency_key: str, sequence: int) -> str:
    """The id of the ``sequence``-th event published while handling ``idempotency_key``."""
    return str(uuid.uuid5(_DERIVED_NAMESPACE, f"{group}\x00{idempotency_key}\x00{sequence}"))


class Publisher(Protocol):
    """Where :meth:`Context.publish` sends: the app's producer, or the poll's transaction."""

    async def publish(self, item: Outgoing) -> PublishResult | None:
        """Publish one event; None when it is only sent when the transaction commits."""


class ProducerPublisher:
    """Publishes through an :class:`~eventplatform.producer.EventProducer`, waiting for the ack."""

    __slots__ = ("producer",)

    def __init__(self, producer: EventProducer) -> None:
        self.producer = producer

    async def publish(self, item: Outgoing) -> PublishResult | None:
        """Publish ``item`` and return where it landed (timed and traced by the producer,
        :mod:`eventplatform.observability.events`)."""
        return await self.producer.publish(
            item.event,
            key=item.key,
            idempotency_key=item.idempotency_key,
            headers=item.headers,
            topic=item.topic,
            subject=item.subject,
            event_id=item.event_id,
            time=item.time,
            traceparent=item.traceparent,
        )


class Context:
    """What a handler knows about the event it handles, and how it has effects.

    Attributes:
        metadata: the event's CloudEvents attributes, idempotency key and trace context.
        topic, partition, offset: where the record was read.
        key: the record's Kafka key (the partitioning key), or None.
        headers: the record's headers, as read.
        attempt: 1 for the first call of the handler for this event, 2 for the first retry…
        group_id: the consumer group.
    """

    __slots__ = (
        "_no_unit_reason",
        "_publisher",
        "_sequence",
        "_unit",
        "attempt",
        "group_id",
        "headers",
        "key",
        "metadata",
        "offset",
        "partition",
        "topic",
    )

    def __init__(
        self,
        *,
        metadata: EventMetadata,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        group_id: str,
        publisher: Publisher,
        unit: Unit | None = None,
        no_unit_reason: str = "",
        attempt: int = 1,
    ) -> None:
        self.metadata = metadata
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.headers = headers
        self.group_id = group_id
        self.attempt = attempt
        self._publisher = publisher
        self._unit = unit
        self._no_unit_reason = no_unit_reason
        self._sequence = 0

    def __repr__(self) -> str:
        return (
            f"<Context {self.topic}[{self.partition}]@{self.offset} "
            f"key={self.idempotency_key!r} attempt={self.attempt}>"
        )

    @property
    def idempotency_key(self) -> str:
        """The key whose effects happen once per group: ``ce_idempotencykey``, else ``ce_id``."""
        return self.metadata.idempotency_key

    def _begin_attempt(self, attempt: int, unit: Unit | None, publisher: Publisher) -> None:
        """Reset per-attempt state: unit, publisher, and the numbering of derived event ids."""
        self.attempt = attempt
        self._unit = unit
        self._publisher = publisher
        self._sequence = 0

    @property
    def transaction(self) -> Unit:
        """The idempotency store's unit of this event: ``execute``, ``executemany``, ``fetch``.

        Its writes commit together with the event's idempotency key and roll back when the
        handler raises (SQL in the store's dialect: ``?`` for SQLite, ``$1`` for PostgreSQL).
        Use it only while the handler runs.

        Raises:
            StoreNotTransactional: the store cannot hold the handler's writes (the memory
                store, or the app was built with ``inbox=False``), or the handler is
                ``transactional=True``.
        """
        unit = self._unit
        if unit is None:
            raise StoreNotTransactional(self._no_unit_reason or "no store transaction here")
        return unit

    async def connection(self) -> Any:
        """The database connection of :attr:`transaction`, inside this event's savepoint.

        For the PostgreSQL store this is the batch's ``asyncpg.Connection``: use it for what
        :attr:`transaction` does not offer, never commit or roll back on it, and do not keep
        it past the handler.

        Raises:
            StoreNotTransactional: as :attr:`transaction`.
            IdempotencyStoreError: the store's connection cannot be handed out (SQLite's
                belongs to its worker thread: use ``ctx.transaction.run(fn)`` there).
        """
        unit = self.transaction
        connection = getattr(unit, "connection", None)
        if connection is None:
            raise IdempotencyStoreError(
                f"{type(unit).__name__} does not hand out its connection; use "
                "ctx.transaction.execute/fetch, or ctx.transaction.run(fn) for SQLite"
            )
        return await connection()

    async def publish(
        self,
        event: AvroEvent,
        *,
        key: str | bytes | None = None,
        idempotency_key: str | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        topic: str | None = None,
        subject: str | None = None,
        event_id: str | None = None,
        time: datetime | None = None,
    ) -> PublishResult | None:
        """Publish a derived event, propagating this event's trace context.

        Args:
            event: the event to publish.
            key: its Kafka key (partitioning key).
            idempotency_key: defaults to its event id.
            headers: extra headers.
            topic: defaults to the event class's topic.
            subject: its ``ce_subject``.
            event_id: its ``ce_id``; default: deterministic (see the module docstring).
            time: its ``ce_time``; default: now.

        Returns:
            Where the record landed, once acknowledged; None in a ``transactional=True``
            handler, where it is sent when the handler returns and is visible to
            ``read_committed`` consumers once the poll's transaction commits.

        Raises:
            ConfigurationError: no topic for the event.
            SerializationError: the event does not fit its schema.
            RegistryError: its schema could not be registered or found.
            PublishTimeout: not acknowledged in time (retriable).
            PublishError: the broker refused the record.
        """
        sequence = self._sequence
        self._sequence = sequence + 1
        meta = self.metadata
        if meta.tracestate and not any(name == H_TRACESTATE for name, _ in headers):
            headers = (*headers, (H_TRACESTATE, meta.tracestate.encode()))
        item = Outgoing(
            event=event,
            key=key,
            topic=topic,
            idempotency_key=idempotency_key,
            headers=headers,
            subject=subject,
            event_id=event_id or derived_event_id(self.group_id, meta.idempotency_key, sequence),
            time=time,
            traceparent=meta.traceparent,
        )
        return await self._publisher.publish(item)
