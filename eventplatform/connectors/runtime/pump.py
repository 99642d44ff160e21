"""Publishing what a :class:`~eventplatform.connectors.sdk.Source` yields, then its offsets.

Three tasks joined by queues, so that neither a slow source nor a slow broker idles the other:

1. the **reader** iterates :meth:`Source.records` and queues each record; a semaphore of
   ``max_in_flight`` permits (released once a record is settled) is the backpressure;
2. the **sender** takes what is queued (up to ``max_batch`` at once: batches grow under load
   and stay single records when idle) and publishes it in order through the producer's
   public API (:class:`RecordWriter`: ``publish_batch`` for typed events, one wait for all
   acknowledgements), so the producer's delivery timeout and its recovery from refused
   sequence numbers (aiokafka #1017) apply. One batch is in flight at a time: two
   concurrent batches could interleave within a partition and reorder a key's records;
3. the **settler** takes each published batch in order, commits its source positions to
   the offsets topic, *then* resolves the records' ``ack`` futures, while the sender
   publishes the next batch. A failed record stops the settler before its position (and
   any later one) is committed, and fails the run: a restart resumes after the last
   committed position and re-emits the rest, with the same event ids (at-least-once;
   consumers deduplicate).
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
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from eventplatform.cloudevents import EventMetadata
from eventplatform.connectors.sdk.records import SourcePosition, SourceRecord
from eventplatform.connectors.sdk.status import ConnectorStats
from eventplatform.errors import ConnectorError, EventPlatformError
from eventplatform.observability import events as observed
from eventplatform.producer import EventProducer, Outgoing, PublishResult
from eventplatform.producer._errors import translate
from eventplatform.producer.coalescer import publish_each

if TYPE_CHECKING:
    from eventplatform.connectors.runtime.offsets import OffsetStore

__all__ = ["Readable", "RecordWriter", "SourcePump"]

log = logging.getLogger("eventplatform.connectors")


class Readable(Protocol):
    """What the pump needs of a source (a :class:`~eventplatform.connectors.sdk.Source` is one)."""

    @property
    def name(self) -> str:
        """The connector's name."""

    @property
    def stats(self) -> ConnectorStats:
        """Its counters, which the pump keeps up to date."""

    def records(self) -> AsyncIterator[SourceRecord]:
        """The records to publish, in order."""


@dataclass(slots=True)
class Flight:
    """One batch of records published: each record's outcome, in order.

    ``outcomes[i]`` is the :class:`PublishResult` of ``records[i]`` or the error that kept it
    from being written. A record that is not answered and fails ends the flight: the records
    after it are ``unsent``, and ``error`` says why.
    """

    records: list[SourceRecord] = field(default_factory=list)
    outcomes: list[PublishResult | BaseException] = field(default_factory=list)
    unsent: list[SourceRecord] = field(default_factory=list)
    error: BaseException | None = None


class RecordWriter:
    """Publishes source records through a producer's public API, in order.

    Typed events go out through :meth:`EventProducer.publish_batch` (one aiokafka batch per
    partition and one acknowledgement wait per run of events), raw values through
    :meth:`EventProducer.send_raw`; either way the producer's delivery timeout applies and it
    replaces its aiokafka client when the broker refuses its sequence numbers (aiokafka
    #1017), which a connector writing to ``producer.client`` directly would not get.

    Args:
        producer: a started producer.
        default_topic: the topic of records that name none.
        event_source: the CloudEvents ``source`` of the records.
    """

    def __init__(
        self,
        producer: EventProducer,
        *,
        default_topic: str | None,
        event_source: str,
    ) -> None:
        self.producer = producer
        self.default_topic = default_topic
        self.event_source = event_source

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

    def outgoing(self, record: SourceRecord) -> Outgoing:
        """The :class:`Outgoing` of a typed ``record``.

        Raises:
            ConnectorError: no topic.
        """
        assert record.event is not None
        return Outgoing(
            record.event,
            key=record.key,
            topic=self.topic_for(record),
            headers=record.headers,
            metadata=self._metadata(record, type(record.event).__avro_name__),
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
        """Publish ``records`` in order and wait for them; return their outcomes.

        A record that is not *answered* and cannot be published stops the batch there: the
        flight's ``error`` is set and the rest is ``unsent`` (the caller settles what was
        published, then fails the run).
        """
        flight = Flight()
        index = 0
        while index < len(records) and flight.error is None:
            if records[index].event is None:
                segment = [records[index]]
                outcomes = [await self._send_raw(records[index])]
            else:
                stop = index
                while stop < len(records) and records[stop].event is not None:
                    stop += 1
                segment = list(records[index:stop])
                outcomes = await self._publish_events(segment)
            for offset, (record, outcome) in enumerate(zip(segment, outcomes, strict=True)):
                flight.records.append(record)
                flight.outcomes.append(outcome)
                if isinstance(outcome, BaseException) and not record.answered:
                    flight.error = outcome
                    flight.unsent = list(segment[offset + 1 :]) + list(
                        records[index + len(segment) :]
                    )
                    break
            index += len(segment)
        return flight

    async def _publish_events(
        self, records: list[SourceRecord]
    ) -> list[PublishResult | BaseException]:
        """The outcomes of publishing typed ``records`` in one pass (:func:`publish_each`).

        A record that cannot be built or encoded fails alone; when it is not answered, the
        records after it are not sent (:meth:`send` leaves them unsent).
        """
        items: list[Outgoing | EventPlatformError] = []
        for record in records:
            try:
                items.append(self.outgoing(record))
            except EventPlatformError as exc:
                items.append(exc)
        sending = None
        if observed.SWITCHES.sending:  # one send span and timing per relayed batch
            first = records[0]
            topic = first.topic or self.default_topic or ""
            sending = observed.send_started(None, topic, len(items))
        outcomes: list[PublishResult | BaseException] = list(
            await publish_each(
                self.producer,
                items,
                stop=lambda index: not records[index].answered,
                traceparent=sending.traceparent if sending else None,
            )
        )
        if sending is not None:
            observed.batch_finished(sending, outcomes)
        return outcomes

    async def _send_raw(self, record: SourceRecord) -> PublishResult | BaseException:
        assert record.value is not None
        topic = self.describe_topic(record)
        try:
            topic = self.topic_for(record)
            key = record.key.encode() if isinstance(record.key, str) else record.key
            if record.event_type is None:
                headers, ids = list(record.headers), ("", "")
            else:
                meta = replace(
                    self._metadata(record, record.event_type), content_type=record.content_type
                )
                headers, ids = meta.to_headers(record.headers), (meta.id, meta.idempotency_key)
            result = await self.producer.send_raw(topic, record.value, key=key, headers=headers)
        except Exception as exc:
            return _translated(exc, topic)
        return result._replace(event_id=ids[0], idempotency_key=ids[1])


def _translated(exc: BaseException, topic: str) -> BaseException:
    error = translate(exc, topic=topic)
    if error is not exc:
        error.__cause__ = exc
    return error


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
        source: Readable,
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
            positions: list[SourcePosition] = []
            settled: list[tuple[SourceRecord, PublishResult | BaseException]] = []
            fatal: BaseException | None = None
            for record, outcome in zip(item.records, item.outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    stats.failed(outcome)
                    settled.append((record, outcome))
                    if not record.answered and fatal is None:
                        fatal = outcome
                    continue
                if record.position is not None:
                    if fatal is not None:
                        # Durable, but its position cannot be committed past the failure.
                        settled.append((record, fatal))
                        continue
                    positions.append(record.position)
                settled.append((record, outcome))
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
