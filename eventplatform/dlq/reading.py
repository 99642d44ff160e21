"""Reading a dead-letter topic: a selection of it, from its start to its end as of the call.

The reader assigns the partitions it needs (no consumer group: reading commits nothing and
moves no one's offsets), seeks to the first selected offset and stops at the end offset it
saw when the scan began, so a topic that keeps growing is still read to an end. Records of
aborted transactions are skipped (``read_committed``, KIP-98).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient

from eventplatform.dlq.letters import DeadLetterRecord, Selection
from eventplatform.errors import (
    DeadLetterError,
    EventPlatformError,
    KafkaError,
    ResourceStateError,
    map_exceptions,
)

__all__ = ["DeadLetterReader", "Progress"]

Progress = Callable[[int, int], None]
"""Told ``(offsets scanned, offsets to scan)`` as a scan goes."""

_KAFKA_ERRORS: dict[type[BaseException], type[EventPlatformError]] = {
    kafka_errors.KafkaError: KafkaError,
    OSError: KafkaError,
    TimeoutError: KafkaError,
}


class DeadLetterReader:
    """Reads dead letters from one topic. An async context manager::

        async with DeadLetterReader("orders.dlq", options=kafka_options) as reader:
            async for letter in reader.scan(Selection(error_class="ValueError")):
                print(letter.position, letter.reason)

    Args:
        topic: the dead-letter topic.
        options: aiokafka client keyword arguments (``bootstrap_servers``, security).
        stall_timeout: seconds a scan may go without progress before it fails.
    """

    def __init__(
        self, topic: str, *, options: Mapping[str, Any], stall_timeout: float = 30.0
    ) -> None:
        self.topic = topic
        self._options = dict(options)
        self._servers = str(self._options.get("bootstrap_servers"))
        self.stall_timeout = stall_timeout
        self.partitions: list[int] = []
        self._consumer: AIOKafkaConsumer | None = None

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

    async def start(self) -> None:
        """Find the topic's partitions and connect.

        Raises:
            DeadLetterError: the topic does not exist.
            KafkaError: Kafka cannot be reached.
        """
        admin = AIOKafkaAdminClient(
            **{k: v for k, v in self._options.items() if k != "isolation_level"}
        )
        try:
            with map_exceptions(_KAFKA_ERRORS, f"reading topic {self.topic!r} on {self._servers}"):
                await admin.start()
                # Listing first: describing a missing topic could auto-create it.
                if self.topic not in await admin.list_topics():
                    raise DeadLetterError(f"topic {self.topic!r} does not exist on {self._servers}")
                (described,) = await admin.describe_topics([self.topic])
        finally:
            await admin.close()
        self.partitions = sorted(p["partition"] for p in described["partitions"])
        consumer = AIOKafkaConsumer(
            enable_auto_commit=False, isolation_level="read_committed", **self._options
        )
        with map_exceptions(_KAFKA_ERRORS, f"connecting to {self._servers}"):
            try:
                await consumer.start()
            except BaseException:
                await consumer.stop()
                raise
        self._consumer = consumer

    async def close(self) -> None:
        """Disconnect. Idempotent."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def scan(
        self, selection: Selection | None = None, *, progress: Progress | None = None
    ) -> AsyncGenerator[DeadLetterRecord]:
        """The selected dead letters, partition by partition in offset order per partition.

        Raises:
            ResourceStateError: not started.
            DeadLetterError: the selection names a partition the topic lacks; no progress for
                ``stall_timeout`` seconds.
            KafkaError: reading failed.
        """
        consumer = self._require()
        selection = selection or Selection()
        where = f"reading {self.topic!r} on {self._servers}"
        if selection.partition is not None and selection.partition not in self.partitions:
            raise DeadLetterError(
                f"topic {self.topic!r} has no partition {selection.partition} (it has "
                f"{', '.join(map(str, self.partitions))})"
            )
        wanted = [
            TopicPartition(self.topic, p)
            for p in self.partitions
            if selection.partition is None or p == selection.partition
        ]
        with map_exceptions(_KAFKA_ERRORS, where):
            begins = await consumer.beginning_offsets(wanted)
            ends = await consumer.end_offsets(wanted)
        ranges: dict[TopicPartition, tuple[int, int]] = {}
        for tp in wanted:
            first = max(begins[tp], selection.first_offset or 0)
            stop = ends[tp]
            if selection.last_offset is not None:
                stop = min(stop, selection.last_offset + 1)
            if first < stop:
                ranges[tp] = (first, stop)
        total = sum(stop - first for first, stop in ranges.values())
        if progress:
            progress(0, total)
        if not ranges:
            return
        consumer.assign(list(ranges))
        for tp, (first, _) in ranges.items():
            consumer.seek(tp, first)
        open_ = dict(ranges)
        loop = asyncio.get_running_loop()
        last_progress, scanned = loop.time(), 0
        while open_:
            with map_exceptions(_KAFKA_ERRORS, where):
                batch = await consumer.getmany(*open_, timeout_ms=500)
            for tp, records in batch.items():
                stop = ranges[tp][1]
                for record in records:
                    if record.offset >= stop:
                        break
                    letter = DeadLetterRecord.parse(
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                        timestamp=record.timestamp,
                        key=record.key,
                        value=record.value,
                        headers=list(record.headers or ()),
                    )
                    if selection.matches(letter):
                        yield letter
            now_scanned = 0
            for tp, (first, stop) in ranges.items():
                position = stop if tp not in open_ else await consumer.position(tp)
                now_scanned += min(position, stop) - first
                if tp in open_ and position >= stop:
                    del open_[tp]
            if now_scanned > scanned:
                scanned, last_progress = now_scanned, loop.time()
                if progress:
                    progress(scanned, total)
            elif loop.time() - last_progress > self.stall_timeout:
                stuck = ", ".join(f"partition {tp.partition}" for tp in open_)
                raise DeadLetterError(
                    f"reading {self.topic!r} made no progress for {self.stall_timeout:.0f}s "
                    f"({stuck})"
                )

    async def get(self, partition: int, offset: int) -> DeadLetterRecord:
        """The dead letter at ``partition``/``offset``.

        Raises:
            DeadLetterError: there is no record there (the message names the topic, partition
                and offset).
            KafkaError: reading failed.
        """
        selection = Selection(partition=partition, first_offset=offset, last_offset=offset)
        async with aclosing(self.scan(selection)) as letters:
            async for letter in letters:
                return letter
        raise DeadLetterError(
            f"no record at topic {self.topic!r} partition {partition} offset {offset} (deleted, "
            "past the end, or part of an aborted transaction)"
        )

    def _require(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise ResourceStateError("DeadLetterReader is not started; use it in `async with`")
        return self._consumer
