"""Consumer records for unit tests, shaped like aiokafka's, carrying real Avro and headers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiokafka.structs import ConsumerRecord, TopicPartition

from eventplatform.cloudevents import EventMetadata
from eventplatform.schema import AvroEvent
from eventplatform.serde import AvroSerializer


class Placed(AvroEvent, namespace="com.example", topic="orders"):
    order_id: str
    amount: int = 0


class Shipped(AvroEvent, namespace="com.example"):
    order_id: str


def record(
    offset: int,
    value: bytes | None,
    *,
    key: bytes | None = None,
    headers: Sequence[tuple[str, bytes]] = (),
    topic: str = "orders",
    partition: int = 0,
    timestamp: int = 0,
) -> Any:
    """An aiokafka ``ConsumerRecord``."""
    return ConsumerRecord(
        topic, partition, offset, timestamp, 0, key, value, None, 0, 0, tuple(headers)
    )


async def event_record(
    serializer: AvroSerializer,
    event: AvroEvent,
    offset: int,
    *,
    key: bytes | None = None,
    idempotency_key: str | None = None,
    topic: str = "orders",
    partition: int = 0,
) -> Any:
    """A record carrying ``event`` as our producer writes it."""
    meta = EventMetadata.new(
        source="/tests", type=type(event).__avro_name__, idempotency_key=idempotency_key
    )
    value = await serializer.serialize(event, topic)
    return record(
        offset, value, key=key, headers=meta.to_headers(), topic=topic, partition=partition
    )


def tp(topic: str = "orders", partition: int = 0) -> TopicPartition:
    """A ``TopicPartition``."""
    return TopicPartition(topic, partition)
