"""Publishing what a :class:`~eventplatform.connectors.base.Source` yields, then its offsets.

Three tasks joined by queues, so that neither a slow source nor a slow broker idles the other:

1. the **reader** iterates :meth:`Source.records` and queues each record; a semaphore of
   ``max_in_flight`` permits (released once a record is settled) is the backpressure;
2. the **sender** takes what is queued (up to ``max_batch`` at once: batches grow under load
   and stay single records when idle), encodes each record and appends it to the producer
   in order (aiokafka ``send``, which returns the acknowledgement future), so records go out
   in the order yielded and one batch is in flight while the next is being sent;
3. the **settler** waits for each batch's acknowledgements in order, *then* commits the
   batch's source positions to the offsets topic, *then* resolves the records' ``ack``
   futures. A failed record stops the settler before its position (and any later one) is
   committed, and fails the run: a restart resumes after the last committed position and
   re-emits the rest, with the same event ids (at-least-once; consumers deduplicate).
   Records that are *answered* (an ``ack`` future and no position, e.g. an HTTP request) get
   the error instead and the pump goes on.

On stop the reader lets the source's generator end by itself (it sees ``stopping``) for
``stop_grace`` seconds, then cancels it; everything already read is still published and
committed before :meth:`SourcePump.run` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from aiokafka import errors as kafka_errors

from eventplatform.cloudevents import EventMetadata
from eventplatform.connectors.records import SourcePosition, SourceRecord
from eventplatform.errors import (
    ConnectorError,
    EventPlatformError,
    KafkaError,
    PublishError,
    PublishTimeout,
)
from eventplatform.producer import EventProducer, PublishResult
from eventplatform.serde import AvroSerializer, SubjectNameStrategy
from eventplatform.settings import Settings

if TYPE_CHECKING:
    from eventplatform.connectors.base import Source
    from eventplatform.connectors.offsets import OffsetStore

__all__ = ["RecordWriter", "SourcePump"]

log = logging.getLogger("eventplatform.connectors")


def translate_kafka_error(exc: BaseException, topic: str) -> EventPlatformError:
    """The eventplatform error for an aiokafka (or network) failure writing to ``topic``."""
    if isinstance(exc, EventPlatformError):
        return exc
    text = f"publishing to topic {topic!r} failed: {type(exc).__name__}: {exc}"
    if isinstance(
        exc,
        kafka_errors.KafkaTimeoutError
        | kafka_errors.RequestTimedOutError
        | kafka_errors.KafkaConnectionError
        | kafka_errors.NotEnoughReplicasError
        | kafka_errors.NotLeaderForPartitionError
        | OSError
        | TimeoutError,
    ):
        return PublishTimeout(text)
    if isinstance(exc, kafka_errors.KafkaError):
        return PublishError(text)
    return KafkaError(text)


@dataclass(slots=True)
class Flight:
    """One batch handed to the producer: its records and their acknowledgement futures.

    ``outcomes[i]`` is the future of ``records[i]``, or the error that kept it from being sent
    (only for answered records). A record that is not answered and cannot be sent ends the
    flight: it and the records after it are ``unsent``, and ``error`` says why.
    """

    records: list[SourceRecord] = field(default_factory=list)
    outcomes: list[asyncio.Future[Any] | BaseException] = field(default_factory=list)
    ids: list[tuple[str, str]] = field(default_factory=list)
    unsent: list[SourceRecord] = field(default_factory=list)
    error: BaseException | None = None


class RecordWriter:
    """Encodes source records and appends them to a producer, in order.

    Args:
        producer: a started producer (its aiokafka client and registry are used).
        settings: subject strategy and auto-registration come from ``settings.registry``.
        default_topic: the topic of records that name none.
        event_source: the CloudEvents ``source`` of the records.
    """

    def __init__(
        self,
        producer: EventProducer,
        *,
        settings: Settings,
        default_topic: str | None,
        event_source: str,
    ) -> None:
        self.producer = producer
        self.default_topic = default_topic
        self.event_source = event_source
        self.serializer = AvroSerializer(
            producer.registry,
            strategy=SubjectNameStrategy(settings.registry.subject_strategy),
            auto_register=settings.registry.auto_register,
        )

    def describe_topic(self, record: SourceRecord) -> str:
        """The topic of ``record`` for messages (``?`` when it has none)."""
        try:
            return self.topic_for(record)
        except ConnectorError:
            return "?"

    def topic_for(self, record: SourceRecord) -> str:
        """The topic ``record`` goes to.

        Raises:
            ConnectorError: neither the record, the connector nor the event class names one.
        """
        topic = record.topic or self.default_topic
        if not topic and record.event is not None:
            topic = type(record.event).__avro_topic__
        if not topic:
            raise ConnectorError("the record names no topic and the connector has none")
        return topic

    async def encode(
        self, record: SourceRecord
    ) -> tuple[str, bytes, bytes | None, list[tuple[str, bytes]], tuple[str, str]]:
        """``(topic, value, key, headers, (event id, idempotency key))`` of ``record``.

        Raises:
            ConnectorError: no topic.
            SerializationError: the event does not fit its schema.
            RegistryError: its schema could not be registered or found.
        """
        topic = self.topic_for(record)
        key = record.key.encode() if isinstance(record.key, str) else record.key
        if record.event is not None:
            event_type = type(record.event)
            writer = self.serializer.cached(event_type, topic)
            if writer is None:
                writer = await self.serializer.prepare(event_type, topic)
            value = writer.encode(record.event)
            meta = self._metadata(record, event_type.__avro_name__)
            return (
                topic,
                value,
                key,
                meta.to_headers(record.headers),
                (meta.id, meta.idempotency_key),
            )
        assert record.value is not None
        if record.event_type is None:
            return topic, record.value, key, list(record.headers), ("", "")
        meta = replace(self._metadata(record, record.event_type), content_type=record.content_type)
        return (
            topic,
            record.value,
            key,
            meta.to_headers(record.headers),
            (meta.id, meta.idempotency_key),
        )

    def _metadata(self, record: SourceRecord, event_type: str) -> EventMetadata:
        return EventMetadata.new(
            source=self.event_source,
            type=event_type,
            id=record.event_id,
            time=record.time,
            subject=record.subject,
            idempotency_key=record.idempotency_key,
            traceparent=record.traceparent,
        )

    async def send(self, records: Sequence[SourceRecord]) -> Flight:
        """Append ``records`` to the producer in order; return them with their futures.

        A record that is not *answered* and cannot be encoded or sent stops the batch there:
        the flight's ``error`` is set and the rest is ``unsent`` (the caller settles what was
        sent, then fails the run).
        """
        client = self.producer.client
        flight = Flight()
        for index, record in enumerate(records):
            topic = self.describe_topic(record)
            try:
                topic, value, key, headers, ids = await self.encode(record)
                future = await client.send(topic, value, key=key, headers=headers)
            except Exception as exc:
                error = translate_kafka_error(exc, topic)
                if error is not exc:
                    error.__cause__ = exc
                if not record.answered:
                    flight.error = error
                    flight.unsent = list(records[index:])
                    break
                future, ids = error, ("", "")
            flight.records.append(record)
            flight.outcomes.append(future)
            flight.ids.append(ids)
        return flight


@dataclass(slots=True)
class _End:
    error: BaseException | None = None


class SourcePump:
    """Runs one source: reader, sender and settler (see the module docstring).

    Args:
        source: the started source.
        writer: encodes and sends its records.
        offsets: where positions are committed.
        max_batch: records per send batch.
        max_in_flight: records read but not settled.
        stop_grace: seconds the source's generator gets to end after a stop.
        stopping: set when the source is asked to stop.
    """

    def __init__(
        self,
        source: Source[Any],
        writer: RecordWriter,
        offsets: OffsetStore,
        *,
        max_batch: int,
        max_in_flight: int,
        stop_grace: float,
        stopping: asyncio.Event,
    ) -> None:
        self.source = source
        self.writer = writer
        self.offsets = offsets
        self.max_batch = max_batch
        self.stop_grace = stop_grace
        self._stopping = stopping
        self._permits = asyncio.Semaphore(max_in_flight)
        self._records: asyncio.Queue[SourceRecord | _End] = asyncio.Queue()
        self._flights: asyncio.Queue[Flight | _End] = asyncio.Queue()
        self._unsettled: deque[Flight] = deque()

    async def run(self) -> None:
        """Publish until the source ends (by itself or after a stop), then return.

        Raises:
            EventPlatformError: a record could not be published or its position committed,
                or the source's generator raised; what was durable before is committed.
        """
        reader = asyncio.create_task(self._read(), name=f"connector {self.source.name}: read")
        sender = asyncio.create_task(self._send(reader), name=f"connector {self.source.name}: send")
        watcher = asyncio.create_task(self._watch_stop(reader))
        try:
            await self._settle()
        except BaseException as exc:
            for task in (reader, sender):
                task.cancel()
            await asyncio.gather(reader, sender, return_exceptions=True)
            self._fail_pending(exc)
            raise
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        await asyncio.gather(reader, sender, return_exceptions=True)

    # -- reader -------------------------------------------------------------------------------

    async def _read(self) -> None:
        end = _End()
        records = self.source.records()
        try:
            while True:
                # The permit comes first, so no record is ever held while waiting for one.
                await self._permits.acquire()
                try:
                    record = await anext(records)
                except StopAsyncIteration:
                    self._permits.release()
                    break
                except BaseException:
                    self._permits.release()
                    raise
                if not isinstance(record, SourceRecord):
                    raise ConnectorError(
                        f"connector {self.source.name!r}: records() yielded "
                        f"{type(record).__name__}, not a SourceRecord"
                    )
                self._records.put_nowait(record)
        except asyncio.CancelledError:
            if not self._stopping.is_set():
                end.error = ConnectorError(f"connector {self.source.name!r}: reading cancelled")
        except Exception as exc:
            end.error = exc
        finally:
            self._records.put_nowait(end)
            # An async generator's own cleanup (its finally blocks) runs now, not at GC.
            close = getattr(records, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    async def _watch_stop(self, reader: asyncio.Task[None]) -> None:
        await self._stopping.wait()
        done, _ = await asyncio.wait({reader}, timeout=self.stop_grace)
        if not done:
            log.warning(
                "connector %s: records() did not end within %.0fs of the stop; cancelling it",
                self.source.name,
                self.stop_grace,
            )
            reader.cancel()

    # -- sender -------------------------------------------------------------------------------

    async def _send(self, reader: asyncio.Task[None]) -> None:
        try:
            await self._send_batches(reader)
        except Exception as exc:  # never leave the settler waiting for a flight
            reader.cancel()
            self._flights.put_nowait(_End(exc))

    async def _send_batches(self, reader: asyncio.Task[None]) -> None:
        while True:
            item = await self._records.get()
            if isinstance(item, _End):
                self._flights.put_nowait(item)
                return
            batch = [item]
            end: _End | None = None
            while len(batch) < self.max_batch and not self._records.empty():
                more = self._records.get_nowait()
                if isinstance(more, _End):
                    end = more
                    break
                batch.append(more)
            flight = await self.writer.send(batch)
            if flight.records:
                self._unsettled.append(flight)
                self._flights.put_nowait(flight)
            if flight.error is not None:
                self.source.stats.failed(flight.error)
                self._fail_records(flight.unsent, flight.error)
                reader.cancel()
                self._flights.put_nowait(_End(flight.error))
                return
            if end is not None:
                self._flights.put_nowait(end)
                return

    # -- settler ------------------------------------------------------------------------------

    async def _settle(self) -> None:
        stats = self.source.stats
        while True:
            item = await self._flights.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            outcomes = await asyncio.gather(
                *(o for o in item.outcomes if isinstance(o, asyncio.Future)),
                return_exceptions=True,
            )
            results = iter(outcomes)
            positions: list[SourcePosition] = []
            settled: list[tuple[SourceRecord, PublishResult | BaseException]] = []
            fatal: BaseException | None = None
            for record, outcome, (event_id, key) in zip(
                item.records, item.outcomes, item.ids, strict=True
            ):
                value = next(results) if isinstance(outcome, asyncio.Future) else outcome
                if isinstance(value, BaseException):
                    error = translate_kafka_error(value, self.writer.describe_topic(record))
                    stats.failed(error)
                    settled.append((record, error))
                    if not record.answered and fatal is None:
                        fatal = error
                    continue
                result = PublishResult(
                    value.topic, value.partition, value.offset, value.timestamp, event_id, key
                )
                if record.position is not None:
                    if fatal is not None:
                        # Durable, but its position cannot be committed past the failure.
                        settled.append((record, fatal))
                        continue
                    positions.append(record.position)
                settled.append((record, result))
            if positions:
                try:
                    await self.offsets.commit(self.source.name, positions)
                except Exception as exc:
                    fatal = fatal or exc
                    settled = [(r, fatal if r.position is not None else o) for r, o in settled]
            self._unsettled.popleft()
            for _ in item.records:
                self._permits.release()
            published = 0
            for record, answer in settled:
                if isinstance(answer, PublishResult):
                    published += 1
                if record.ack is None or record.ack.done():
                    continue
                if isinstance(answer, BaseException):
                    record.ack.set_exception(answer)
                else:
                    record.ack.set_result(answer)
            if published:
                stats.published(published)
            if fatal is not None:
                raise fatal

    # -- failure ------------------------------------------------------------------------------

    @staticmethod
    def _fail_records(records: Sequence[SourceRecord], error: BaseException) -> None:
        for record in records:
            if record.ack is not None and not record.ack.done():
                record.ack.set_exception(error)

    def _fail_pending(self, error: BaseException) -> None:
        """Answer every record still waiting (in flight or queued) with ``error``."""
        for flight in self._unsettled:
            self._fail_records(flight.records, error)
        self._unsettled.clear()
        while not self._records.empty():
            item = self._records.get_nowait()
            if isinstance(item, SourceRecord):
                self._fail_records([item], error)
