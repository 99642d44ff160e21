"""The records of one ``publish_batch`` call, laid out in aiokafka batches per partition.

:class:`BatchPlan` appends every record to an aiokafka ``BatchBuilder`` of its partition
(``create_batch``), keeps full builders aside and sends nothing until :meth:`BatchPlan.send`:
so a record that cannot be encoded fails the call with nothing written. Per record it keeps
only a position and an offset relative to its batch, in flat lists of ints, so a batch of
thousands of events adds almost nothing to the heap the cyclic garbage collector walks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.structs import TopicPartition

from eventplatform.errors import PublishError, RecordTooLarge

__all__ = ["BatchPlan", "KeyPartitions", "PartitionBatch"]

Partitioner = Callable[[bytes | None, list[int], list[int]], int]


class KeyPartitions:
    """The partition each key goes to, per topic, remembered across calls.

    Keys repeat (a customer, an order) and aiokafka's murmur2 is pure Python, about 3 µs a
    key, a fifth of a batched event's cost; the mapping is valid while the topic's partitions
    stay the same, and it is dropped when they change or when it grows past ``max_keys``.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._topics: dict[str, tuple[list[int], dict[bytes, int]]] = {}

    def for_topic(self, topic: str, partitions: list[int]) -> dict[bytes, int]:
        """The key → partition map of ``topic`` with these ``partitions`` (filled by callers)."""
        known = self._topics.get(topic)
        if known is None or known[0] != partitions or len(known[1]) > self.max_keys:
            known = self._topics[topic] = (partitions, {})
        return known[1]


class PartitionBatch:
    """One aiokafka batch of one partition and where its records came from."""

    __slots__ = ("builder", "offsets", "partition", "positions", "topic")

    def __init__(self, builder: Any, topic: str, partition: int) -> None:
        self.builder = builder
        self.topic = topic
        self.partition = partition
        #: Each record's position in the caller's list, and its offset within the batch.
        self.positions: list[int] = []
        self.offsets: list[int] = []


class BatchPlan:
    """Records appended per partition, sent together by :meth:`send`.

    Args:
        client: the started aiokafka producer whose ``create_batch``/``send_batch`` are used.
        partitioner: aiokafka's partitioner (``DefaultPartitioner``: murmur2 of the key).
        chosen: the partition of each key seen, per topic, kept by the caller across plans
            (:class:`KeyPartitions`).
        max_record_bytes: the producer's ``max_request_size``: a larger record is refused
            before anything is sent, as aiokafka's ``send()`` refuses it (the broker would
            refuse its batch while the call's other batches were written).
    """

    def __init__(
        self,
        client: AIOKafkaProducer,
        partitioner: Partitioner,
        chosen: KeyPartitions,
        *,
        max_record_bytes: int | None = None,
    ) -> None:
        self._client = client
        self._max_record_bytes = max_record_bytes
        self._partitioner = partitioner
        self._partitions: dict[str, list[int]] = {}
        self._known = chosen
        self._chosen: dict[str, dict[bytes, int]] = {}
        self._open: dict[TopicPartition, PartitionBatch] = {}
        self.batches: list[PartitionBatch] = []

    def knows(self, topic: str) -> bool:
        """Whether the partitions of ``topic`` were looked up for this plan."""
        return topic in self._partitions

    async def learn(self, topic: str) -> None:
        """Look up the partitions of ``topic`` (cluster metadata; usually cached)."""
        partitions = sorted(await self._client.partitions_for(topic))
        self._partitions[topic] = partitions
        self._chosen[topic] = self._known.for_topic(topic, partitions)

    def append(
        self,
        position: int,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        timestamp: int,
    ) -> None:
        """Add the record at ``position`` of the caller's list; :meth:`learn` its topic first.

        Raises:
            RecordTooLarge: key and value exceed ``max_record_bytes``.
            PublishError: the record does not fit an empty batch (``max_batch_size``).
        """
        limit = self._max_record_bytes
        if limit is not None:
            size = len(value or b"") + len(key or b"")
            if size > limit:
                raise RecordTooLarge(
                    f"a record of {size} bytes exceeds max_request_size ({limit} bytes) for "
                    f"topic {topic!r}; raise EVENTPLATFORM_PRODUCER__MAX_REQUEST_SIZE"
                )
        chosen = self._chosen[topic]
        partition = chosen.get(key) if key is not None else None
        if partition is None:
            partitions = self._partitions[topic]
            partition = self._partitioner(key, partitions, partitions)
            if key is not None:
                chosen[key] = partition
        tp = TopicPartition(topic, partition)
        batch = self._open.get(tp)
        if batch is not None:
            record = batch.builder.append(
                key=key, value=value, timestamp=timestamp, headers=headers
            )
            if record is not None:
                batch.positions.append(position)
                batch.offsets.append(record.offset)
                return
        # No batch for this partition yet, or the open one is full: start another.
        batch = PartitionBatch(self._client.create_batch(), topic, partition)
        record = batch.builder.append(key=key, value=value, timestamp=timestamp, headers=headers)
        if record is None:  # nothing of it is kept: the plan's other records can still go
            raise PublishError(
                f"a record of {len(value or b'')} bytes does not fit a batch for topic {topic!r}; "
                "raise EVENTPLATFORM_PRODUCER__MAX_BATCH_SIZE"
            )
        self._open[tp] = batch
        self.batches.append(batch)
        batch.positions.append(position)
        batch.offsets.append(record.offset)

    async def send(self) -> list[asyncio.Future[Any]]:
        """Hand every batch to the client; the futures resolve to each batch's metadata.

        Raises:
            aiokafka's errors of ``send_batch`` (the caller translates them).
        """
        client = self._client
        futures = []
        for batch in self.batches:
            # A closed builder is ready at once: aiokafka would otherwise hold a batch
            # handed over by send_batch for linger_ms like one it fills itself, a delay
            # that buys nothing for a batch that is already complete.
            batch.builder.close()
            futures.append(
                await client.send_batch(batch.builder, batch.topic, partition=batch.partition)
            )
        return futures

    def placements(self, acks: list[Any]) -> Iterator[tuple[int, str, int, int]]:
        """``(position, topic, partition, offset)`` of every record, given the batches' acks."""
        for batch, ack in zip(self.batches, acks, strict=True):
            base = ack.offset
            topic, partition = batch.topic, batch.partition
            for position, relative in zip(batch.positions, batch.offsets, strict=True):
                yield position, topic, partition, base + relative
