"""What a source hands to the framework: :class:`SourceRecord` and its :class:`SourcePosition`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventplatform.errors import ConnectorError
from eventplatform.producer import PublishResult
from eventplatform.schema import AvroEvent

__all__ = ["SourcePosition", "SourceRecord"]


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """Where a record sits in its source: Kafka Connect's ``sourcePartition``/``sourceOffset``.

    Attributes:
        partition: names a stream of the source (``{"path": "/var/log/orders.jsonl"}``).
        offset: how far that stream was read once the record is durable
            (``{"position": 4096}``). Both are JSON objects of scalars.
    """

    partition: Mapping[str, Any]
    offset: Mapping[str, Any]


@dataclass(slots=True)
class SourceRecord:
    """One record a :class:`Source` hands to the framework to publish.

    Either ``event`` (published as Confluent Avro with CloudEvents headers) or ``value`` (bytes
    published as they are) is set.

    Attributes:
        event: a typed event.
        value: raw bytes; with ``event_type`` set they get CloudEvents headers with
            ``content_type`` (e.g. JSON payloads), without it only ``headers`` (dead letters).
        key: the Kafka key (partitioning key).
        topic: the topic; default the connector's ``topic``, else the event class's binding.
        event_id: ``ce_id``; give a stable one (derived from the source position or an
            upstream id) so that a record re-emitted after a crash is recognisably the same.
        idempotency_key: defaults to ``event_id``.
        event_type: ``ce_type`` of a raw value.
        content_type: ``content-type`` of a raw value.
        subject, time, traceparent: CloudEvents ``subject``, ``time`` and W3C trace context.
        headers: extra headers, after the CloudEvents ones.
        position: the source position to commit once the record is durable.
        ack: a future the framework resolves with the :class:`PublishResult` once the record
            is durable (and its position committed), or fails with the publish error. A record
            with ``ack`` and no ``position`` is *answered*, not retried, when publishing fails
            (request-reply sources such as the webhook ingress); any other failed record fails
            the source's run, and a restart resumes from the last committed positions.
    """

    event: AvroEvent | None = None
    value: bytes | None = None
    key: str | bytes | None = None
    topic: str | None = None
    event_id: str | None = None
    idempotency_key: str | None = None
    event_type: str | None = None
    content_type: str = "application/json"
    subject: str | None = None
    time: datetime | None = None
    traceparent: str | None = None
    headers: Sequence[tuple[str, bytes]] = ()
    position: SourcePosition | None = None
    ack: asyncio.Future[PublishResult] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if (self.event is None) == (self.value is None):
            raise ConnectorError("a SourceRecord carries either event= or value=, exactly one")

    @property
    def answered(self) -> bool:
        """Whether a publish failure goes to ``ack`` instead of failing the source's run."""
        return self.ack is not None and self.position is None
