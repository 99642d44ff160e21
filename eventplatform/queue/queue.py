"""EventQueue: a typed work queue on a Kafka share group (KIP-932).

``put`` publishes exactly as :class:`~eventplatform.producer.EventProducer` does (Confluent
framing, the registry, CloudEvents headers, idempotent ``acks=all``); ``get`` hands out one
delivery at a time to any number of workers in any number of processes, which share the
records of every partition. Each delivery is settled once::

    async with EventQueue(SendMail, group="mailer") as queue:
        await queue.put(SendMail(to="a@example.com"))
        async for item in queue:
            try:
                await send(item.event)
            except TemporaryFailure:
                await item.release(delay=30)   # back to the queue in 30 s
            except BadAddress as exc:
                await item.reject(exc)         # dead letter, never again
            else:
                await item.task_done()         # accepted, gone

Semantics (at least once, as Kafka gives share groups):

- An item neither settled nor renewed before its lock expires (``share.record.lock.duration.ms``,
  30 s by default) goes back to the queue with its delivery count one higher; after
  ``share.delivery.count.limit`` deliveries (5) the broker archives it.
- Acknowledgements are queued and ride on the next ``ShareFetch``, or are sent alone a moment
  later; :meth:`EventQueue.join` waits until every fetched item is settled and its
  acknowledgement answered.
- ``release(delay=…)`` keeps the record acquired by this member, renews its lock while the
  delay runs (KIP-1222) and releases it when the delay is over: the broker has no delayed
  release, and releasing at once would hand the record out again immediately. On a broker
  without renewals a delay longer than the lock ends early, when the lock expires.
- Leaving the ``async with`` block releases what was fetched and not settled (items handed
  out, buffered ones, delayed releases): other workers get them at once.
- Records that cannot become an event (CloudEvents headers invalid, not Confluent framing,
  unknown schema id, bytes that do not decode) go to the dead-letter topic with the same
  ``__connect.errors.*`` headers as the stream API, and are accepted: never redelivered
  forever. Records of another event type on the topic are accepted and skipped (as
  ``@app.handle`` skips types it has no handler for).

The consumer side (the share-group member) starts on the first ``get``, so a process that only
``put``\\ s never joins the group.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from aiokafka.structs import TopicPartition

from eventplatform.app.delivery import Decoder, Delivery, Outcome
from eventplatform.app.dlq import DeadLetterQueue, Stage
from eventplatform.app.keys import IdempotencyKey
from eventplatform.app.retry import RetryPolicy
from eventplatform.app.routing import Router
from eventplatform.cloudevents import EventMetadata
from eventplatform.errors import (
    ConfigurationError,
    DeserializationError,
    QueueError,
    QueueUnavailable,
    Rejected,
    ResourceStateError,
)
from eventplatform.observability import events as observed
from eventplatform.producer import EventProducer, Key, Outgoing, PublishResult
from eventplatform.queue.consumer import AcknowledgeType, ShareConsumer, ShareRecord
from eventplatform.registry.base import SchemaRegistry
from eventplatform.registry.factory import open_registry
from eventplatform.schema import AvroEvent
from eventplatform.serde import AvroDeserializer
from eventplatform.settings import Settings, load_settings

__all__ = ["EventQueue", "QueueItem"]

log = logging.getLogger("eventplatform.queue")

E = TypeVar("E", bound=AvroEvent)

# The names dead letters give the part that failed, as the stream API's dispatcher does.
_DECODER_CLASS = "eventplatform.serde.AvroDeserializer"
_HEADERS_CLASS = "eventplatform.cloudevents.EventMetadata"
_QUEUE_CLASS = "eventplatform.queue.EventQueue"


async def _no_handler(event: Any, ctx: Any) -> None:  # pragma: no cover - never called
    """The route's handler slot: a queue hands events out instead of calling a handler."""


class QueueItem(Generic[E]):
    """One delivery of a queue: a typed event to work on, then settle exactly once.

    Attributes:
        event: the typed event.
        metadata: its CloudEvents metadata (id, source, type, time, idempotency key, …).
        record: the Kafka record (topic, partition, offset, key, value, headers).
        delivery_count: how many times the broker handed it out, this time included.
    """

    __slots__ = ("_queue", "_settled", "delivery_count", "event", "metadata", "record")

    def __init__(
        self, queue: EventQueue[E], record: ShareRecord, event: E, metadata: EventMetadata
    ) -> None:
        self._queue = queue
        self.record = record
        self.event = event
        self.metadata = metadata
        self.delivery_count = record.delivery_count
        self._settled: str | None = None

    def __repr__(self) -> str:
        r = self.record
        state = self._settled or "pending"
        return (
            f"<QueueItem {type(self.event).__name__} {r.topic}[{r.partition}]@{r.offset} "
            f"delivery {self.delivery_count} {state}>"
        )

    @property
    def idempotency_key(self) -> str:
        """The event's idempotency key (``ce_id`` unless the producer set one)."""
        return self.metadata.idempotency_key

    @property
    def settled(self) -> bool:
        """Whether the item was accepted, released or rejected already."""
        return self._settled is not None

    def _claim(self, how: str) -> None:
        if self._settled is not None:
            r = self.record
            raise QueueError(
                f"item {r.topic}[{r.partition}]@{r.offset} was {self._settled} already; "
                f"it cannot be {how} too",
                group=self._queue.group,
            )
        self._settled = how

    async def task_done(self) -> None:
        """Accept: the work is done, the record leaves the queue for good.

        The acknowledgement rides on the next fetch (or goes alone a moment later);
        :meth:`EventQueue.join` waits for its answer.

        Raises:
            QueueError: the item was settled already.
        """
        self._claim("accepted")
        self._queue._settle(self, AcknowledgeType.ACCEPT)

    async def release(self, delay: float | None = None) -> None:
        """Give the item back to the queue, to be delivered again (delivery count + 1).

        Args:
            delay: seconds before it may be delivered again. The record stays acquired by
                this member meanwhile, its lock renewed, and is released when the delay is
                over (or when the queue closes, whichever comes first).

        Raises:
            QueueError: the item was settled already.
        """
        self._claim("released")
        if delay is None or delay <= 0:
            self._queue._settle(self, AcknowledgeType.RELEASE)
        else:
            self._queue._release_later(self, delay)

    async def reject(self, reason: str | BaseException) -> None:
        """Dead-letter the item (``<topic>.dlq`` with ``__connect.errors.*`` headers), then
        accept it: it is never delivered again.

        Args:
            reason: why; an exception is written with its class and traceback.

        Raises:
            QueueError: the item was settled already, or the dead letter could not be written
                (the item was released instead, to be tried again).
        """
        self._claim("rejected")
        await self._queue._reject(self, reason)

    async def renew(self) -> None:
        """Extend the item's lock by another lock duration (long work; KIP-1222).

        Raises:
            QueueError: the item was settled already.
            SharingUnsupported: the brokers cannot renew locks (before Apache Kafka 4.2).
            QueueUnavailable: the leader cannot be reached.
        """
        if self._settled is not None:
            self._claim("renewed")
        await self._queue.consumer.renew([self.record])


class EventQueue(Generic[E]):
    """A work queue of ``event_type`` events on a Kafka share group. An async context manager.

    Arguments resolve argument → settings → default.

    Args:
        event_type: the event class; its topic is the queue's unless ``topic`` is given.
        topic: the topic the queue lives on.
        group: the share group of the workers; default ``<topic>.queue`` (one queue per topic).
        bootstrap_servers: Kafka cluster; default ``settings.kafka.bootstrap_servers``.
        registry: schema registry; default ``open_registry(settings)`` (owned and closed here).
        settings: all settings; default :func:`~eventplatform.settings.load_settings`.
        source: CloudEvents ``source`` of events put; default the producer settings'.
        dlq_topic: where undecodable and rejected items go; default ``<topic>`` +
            ``settings.consumer.dlq_suffix`` (``.dlq``).
        group_configs: configs set on the share group when the first ``get`` joins it;
            default ``share.auto.offset.reset=earliest`` (``{}`` leaves the group as it is).
        prefetch: records one fetch may acquire (each is locked to this process until
            settled, so keep it near what the workers take at once).
        max_wait: seconds one fetch waits on the broker for records.
        idempotency_key: where the key of a record without CloudEvents headers comes from
            (as for ``@app.handle``); default its derived event id.
        connector: ``__connect.errors.connector.name`` of dead letters; default the group.
        task_id: ``__connect.errors.task.id`` of dead letters; default the member id.

    Raises:
        ConfigurationError: no topic, or the dead-letter topic is the topic itself.
    """

    def __init__(
        self,
        event_type: type[E],
        *,
        topic: str | None = None,
        group: str | None = None,
        bootstrap_servers: str | None = None,
        registry: SchemaRegistry | None = None,
        settings: Settings | None = None,
        source: str | None = None,
        dlq_topic: str | None = None,
        group_configs: Mapping[str, str] | None = None,
        prefetch: int = 100,
        max_wait: float = 0.5,
        idempotency_key: IdempotencyKey | None = None,
        connector: str | None = None,
        task_id: str | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.event_type = event_type
        consumer = self.settings.consumer
        route = Router.make_route(
            event_type,
            _no_handler,
            topic=topic,
            timeout=consumer.handler_timeout,
            retry=RetryPolicy.from_settings(consumer.retry),
            transactional=False,
            dlq_topic=dlq_topic,
            dlq_suffix=consumer.dlq_suffix,
            idempotency_key=idempotency_key,
            sources=consumer.topic_sources,
        )
        self.topic = route.topic
        self.dlq_topic = route.dlq_topic
        self.group = group or f"{self.topic}.queue"
        if prefetch < 1:
            raise ConfigurationError(f"prefetch must be at least 1, got {prefetch}")
        self.prefetch = prefetch
        self.max_wait = max_wait
        self.group_configs = group_configs
        self.bootstrap_servers = bootstrap_servers or self.settings.kafka.bootstrap_servers
        self._router = Router()
        self._router.add(route)
        self._retry = route.retry
        self._registry = registry
        self._owns_registry = registry is None
        self._source = source
        self._connector = connector
        self._task_id = task_id
        self._producer: EventProducer | None = None
        self._consumer: ShareConsumer | None = None
        self._decoder: Decoder | None = None
        self._dlq: DeadLetterQueue | None = None
        self._buffer: deque[QueueItem[E]] = deque()
        self._unfinished: set[QueueItem[E]] = set()
        self._all_done = asyncio.Event()
        self._all_done.set()
        self._fetching = asyncio.Lock()
        # A fetch started before the previous one's records were decoded (get_batch's
        # fetch_ahead): its records are acquired, not yet admitted.
        self._ahead: asyncio.Future[list[ShareRecord]] | None = None
        self._delayed: dict[QueueItem[E], asyncio.Task[None]] = {}
        # The latest delivery of each record this member holds: a delivery whose lock expired
        # and that came back to this member must not settle its successor.
        self._current: dict[tuple[str, int, int], QueueItem[E]] = {}
        #: settlements of deliveries superseded by a redelivery (their lock had expired)
        self.stale_settlements = 0
        self._closing = asyncio.Event()
        self._state = "new"

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

    def __repr__(self) -> str:
        return (
            f"<EventQueue {self.event_type.__name__} topic={self.topic!r} group={self.group!r} "
            f"unfinished={len(self._unfinished)} {self._state}>"
        )

    @property
    def consumer(self) -> ShareConsumer:
        """The share-group member underneath (started by the first ``get``).

        Raises:
            ResourceStateError: no ``get`` joined the group yet, or the queue is closed.
        """
        if self._consumer is None or self._state != "started":
            raise ResourceStateError(
                f"EventQueue({self.event_type.__name__}) has no share-group member: it joins "
                "on the first get() inside `async with`"
            )
        return self._consumer

    @property
    def producer(self) -> EventProducer:
        """The producer ``put`` uses.

        Raises:
            ResourceStateError: before :meth:`start` or after :meth:`close`.
        """
        if self._producer is None or self._state != "started":
            raise ResourceStateError(
                f"EventQueue is {self._state}; use it inside `async with` or after start()"
            )
        return self._producer

    @property
    def unfinished(self) -> int:
        """Items fetched and not settled yet (handed out, buffered or waiting to be released)."""
        return len(self._unfinished)

    async def start(self) -> None:
        """Open the registry and the producer (the share-group member joins on first ``get``).

        Raises:
            ResourceStateError: after :meth:`close`.
            KafkaError: the cluster cannot be reached.
            RegistryError: the registry cannot be opened.
        """
        if self._state == "started":
            return
        if self._state == "closed":
            raise ResourceStateError("EventQueue cannot be restarted after close()")
        if self._registry is None:
            self._registry = open_registry(self.settings, bootstrap_servers=self.bootstrap_servers)
        if self._owns_registry:
            await self._registry.start()
        producer = EventProducer(
            bootstrap_servers=self.bootstrap_servers,
            registry=self._registry,
            settings=self.settings,
            source=self._source,
        )
        try:
            await producer.start()
        except BaseException:
            if self._owns_registry:
                await self._registry.close()
            raise
        self._producer = producer
        self._decoder = Decoder(self._router, AvroDeserializer(self._registry))
        self._state = "started"

    async def close(self) -> None:
        """Release what was fetched and not settled, leave the group, close. Idempotent."""
        if self._state == "closed":
            return
        was_started = self._state == "started"
        self._state = "closed"
        self._closing.set()
        delayed = list(self._delayed.values())
        for task in delayed:
            task.cancel()
        await asyncio.gather(*delayed, return_exceptions=True)
        try:
            await self.drop_fetch_ahead()
            if self._consumer is not None:
                # The member releases every record it holds (buffered, handed out, delayed).
                await self._consumer.close()
            self._buffer.clear()
            self._unfinished.clear()
            self._current.clear()
            self._all_done.set()
            if self._producer is not None:
                await self._producer.close()
        finally:
            if was_started and self._owns_registry and self._registry is not None:
                await self._registry.close()

    # -- put ----------------------------------------------------------------------------------

    async def put(
        self, event: E, *, key: Key = None, idempotency_key: str | None = None
    ) -> PublishResult:
        """Publish ``event`` to the queue; returns once the broker acknowledged it.

        Raises:
            ResourceStateError: the queue is not started.
            ConfigurationError: ``event`` is not of the queue's event class.
            SerializationError, RegistryError, PublishTimeout, PublishError: as
                :meth:`EventProducer.publish`.
        """
        self._check_type(event)
        return await self.producer.publish(
            event, key=key, idempotency_key=idempotency_key, topic=self.topic
        )

    async def put_batch(self, events: Iterable[E | Outgoing]) -> list[PublishResult]:
        """Publish many events with one wait for all acknowledgements (results in order).

        Raises:
            The errors of :meth:`put` and :meth:`EventProducer.publish_batch`.
        """
        entries = list(events)
        for entry in entries:
            self._check_type(entry.event if isinstance(entry, Outgoing) else entry)
        return await self.producer.publish_batch(entries, topic=self.topic)

    def _check_type(self, event: AvroEvent) -> None:
        if not isinstance(event, self.event_type):
            raise ConfigurationError(
                f"EventQueue({self.event_type.__name__}) on topic {self.topic!r} takes "
                f"{self.event_type.__name__} events, got {type(event).__name__}"
            )

    # -- get ----------------------------------------------------------------------------------

    async def get(self) -> QueueItem[E]:
        """The next item, waiting as long as it takes.

        A coordinator or leader that cannot be reached is retried with the retry settings'
        backoff (``QueueUnavailable`` escapes only when the queue closes meanwhile).

        Raises:
            ResourceStateError: the queue is not started.
            SharingUnsupported: the cluster has no share groups (what to change is named).
            QueueUnavailable: unreachable while the queue was closing.
            RegistryUnavailable: writer schemas cannot be fetched (the records are released).
        """
        while True:
            items = await self.get_batch(1, timeout=None)
            if items:
                return items[0]

    async def get_batch(
        self,
        max_items: int,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - like getmany(timeout_ms=)
        fetch_ahead: bool = False,
    ) -> list[QueueItem[E]]:
        """Up to ``max_items`` items: at least one, unless ``timeout`` seconds pass first.

        Args:
            max_items: the most items returned.
            timeout: seconds to wait for the first item; None waits as long as it takes.
            fetch_ahead: when a fetch brings records, send the next fetch at once, before
                decoding them, so that its round trip overlaps the decoding and what the
                caller does with the items; the next ``get_batch`` takes its records (it
                may wait up to ``max_wait`` for them, past ``timeout``). For a caller that
                asks again right away: what the fetch ahead acquires is locked to this
                member meanwhile (:meth:`drop_fetch_ahead` gives it back).

        Raises:
            The errors of :meth:`get`.
        """
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        self.producer  # noqa: B018 - raises when not started
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        failures = 0
        while not self._buffer:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return []
            async with self._fetching:
                if self._buffer:
                    break
                wait = self.max_wait if remaining is None else min(self.max_wait, remaining)
                try:
                    await self._fill(max(self.prefetch, max_items), wait, fetch_ahead)
                except QueueUnavailable as exc:
                    # A leader or the coordinator moved or is restarting: what this member
                    # held comes back when its locks expire; keep asking, with backoff.
                    failures += 1
                    log.warning("queue %s: fetching failed (%s); retrying", self.group, exc)
                    if not await self._pause(self._retry.backoff(failures)):
                        raise
                else:
                    failures = 0
        out: list[QueueItem[E]] = []
        while self._buffer and len(out) < max_items:
            out.append(self._buffer.popleft())
        return out

    def __aiter__(self) -> AsyncIterator[QueueItem[E]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[QueueItem[E]]:
        while self._state == "started":
            yield await self.get()

    async def join(self) -> None:
        """Wait until every item fetched so far is settled and its acknowledgement answered.

        Raises:
            QueueUnavailable, QueueError: the last acknowledgements could not be sent.
        """
        await self._all_done.wait()
        if self._consumer is not None and self._state == "started":
            await self._consumer.flush()

    async def connect(self) -> ShareConsumer:
        """Join the share group now rather than on the first ``get`` (fail early).

        Raises:
            ResourceStateError: the queue is not started.
            SharingUnsupported, QueueUnavailable, QueueError, ConfigurationError: as
                :meth:`ShareConsumer.start`.
        """
        self.producer  # noqa: B018 - raises when not started
        return await self._member()

    async def _member(self) -> ShareConsumer:
        if self._consumer is None:
            consumer = ShareConsumer(
                group=self.group,
                topics=[self.topic],
                bootstrap_servers=self.bootstrap_servers,
                settings=self.settings,
                group_configs=self.group_configs,
                max_wait=self.max_wait,
            )
            await consumer.start()
            self._consumer = consumer
            self._dlq = DeadLetterQueue(
                connector=self._connector or self.group,
                task_id=self._task_id or consumer.member_id,
                group=self.group,
                policy=self._retry,
                pause=self._pause,
            )
        return self._consumer

    async def _pause(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            return True
        return False

    async def drop_fetch_ahead(self) -> None:
        """Release the records of a fetch ahead (``get_batch(fetch_ahead=True)``) that no
        ``get_batch`` took, once it is answered: back to the queue for the other members."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return
        try:
            records = await ahead
        except asyncio.CancelledError:
            if not ahead.cancelled():
                raise  # we are cancelled, not the fetch
            return
        except Exception as exc:  # nothing was acquired, or the session is gone with it
            log.debug("queue %s: the fetch ahead failed: %s", self.group, exc)
            return
        consumer = self._consumer
        if consumer is not None:
            for record in records:
                consumer.acknowledge(record, AcknowledgeType.RELEASE)

    async def _fill(self, max_records: int, wait: float, fetch_ahead: bool = False) -> None:
        consumer = await self._member()
        ahead, self._ahead = self._ahead, None
        records = await (ahead or consumer.fetch(max_records, timeout=wait))
        if not records:
            return
        if fetch_ahead and self._state == "started":
            self._ahead = asyncio.ensure_future(consumer.fetch(max_records, timeout=wait))
            await asyncio.sleep(0)  # let it send its request before the decoding below
        decoder = self._decoder
        assert decoder is not None
        polled: dict[TopicPartition, list[ShareRecord]] = {}
        for record in records:
            polled.setdefault(TopicPartition(record.topic, record.partition), []).append(record)
        try:
            batches = await decoder.decode(polled)
        except BaseException:
            # Nothing was decided: give every record back to the queue.
            for record in records:
                consumer.acknowledge(record, AcknowledgeType.RELEASE)
            raise
        for batch in batches:
            for delivery in batch:
                await self._admit(consumer, delivery)

    async def _admit(self, consumer: ShareConsumer, delivery: Delivery) -> None:
        record: ShareRecord = delivery.record
        if delivery.error is None and delivery.outcome is Outcome.UNHANDLED:
            log.warning(
                "queue %s: %s[%d]@%d is not a %s (its writer schema names another type); "
                "accepted and skipped",
                self.group,
                record.topic,
                record.partition,
                record.offset,
                self.event_type.__avro_name__,
            )
            consumer.acknowledge(record, AcknowledgeType.ACCEPT)
            return
        if delivery.error is None:
            try:
                event = delivery.event
            except DeserializationError as exc:
                delivery.fail(exc, Stage.VALUE_CONVERTER)
            else:
                assert delivery.metadata is not None
                item = QueueItem(self, record, event, delivery.metadata)
                self._current[(record.topic, record.partition, record.offset)] = item
                self._unfinished.add(item)
                self._all_done.clear()
                self._buffer.append(item)
                return
        assert delivery.error is not None
        stage = delivery.stage
        class_name = _HEADERS_CLASS if stage is Stage.HEADER_CONVERTER else _DECODER_CLASS
        log.warning("queue %s: dead-lettering %s: %s", self.group, record, delivery.error)
        written = await self._dead_letter(record, delivery.error, stage, class_name)
        # Not written (the DLQ topic refused, or the queue is closing): give it back, so it
        # is dead-lettered on a later delivery rather than lost.
        consumer.acknowledge(record, AcknowledgeType.ACCEPT if written else AcknowledgeType.RELEASE)

    async def _dead_letter(
        self, record: ShareRecord, exc: BaseException, stage: Stage, class_name: str
    ) -> bool:
        dlq = self._dlq
        assert dlq is not None
        letter = dlq.letter(
            dlq_topic=self.dlq_topic,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=record.headers,
            stage=stage,
            class_name=class_name,
            exc=exc,
            attempts=record.delivery_count,
        )
        producer = self.producer

        async def send(letter: Any) -> PublishResult:
            return await producer.send_raw(
                letter.topic, letter.value, key=letter.key, headers=letter.headers
            )

        return await dlq.write(letter, send)

    # -- settling -----------------------------------------------------------------------------

    def _finish(self, item: QueueItem[E]) -> None:
        self._unfinished.discard(item)
        if not self._unfinished:
            self._all_done.set()

    def _settle(self, item: QueueItem[E], kind: AcknowledgeType) -> None:
        self._delayed.pop(item, None)
        record = item.record
        key = (record.topic, record.partition, record.offset)
        if self._current.get(key) is not item:
            # Its lock expired and the broker delivered the record again (to this member):
            # the newer delivery settles it, not this one.
            self.stale_settlements += 1
            log.warning(
                "queue %s: %r was delivered again after its lock expired; settling the old "
                "delivery has no effect",
                self.group,
                item,
            )
        else:
            del self._current[key]
            if self._consumer is not None and self._state == "started":
                self._consumer.acknowledge(record, kind)
                telemetry = observed.SWITCHES.telemetry
                if telemetry is not None:  # a settle span (accept, release, reject)
                    telemetry.settled(record, kind.name.lower(), self.group, item.metadata)
        self._finish(item)

    def _release_later(self, item: QueueItem[E], delay: float) -> None:
        task = asyncio.create_task(
            self._hold(item, delay), name=f"eventplatform.queue.release[{self.group}]"
        )
        self._delayed[item] = task

    async def _hold(self, item: QueueItem[E], delay: float) -> None:
        """Keep ``item`` acquired for ``delay`` seconds (renewing its lock), then release it."""
        consumer = self.consumer
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        try:
            while (remaining := due - loop.time()) > 0:
                # Renew at half the lock: a renewal that arrives late loses the record.
                step = min(remaining, consumer.lock_timeout / 2)
                if not await self._pause(step):
                    return  # closing: close() releases what this member holds
                if due - loop.time() > 0 and consumer.supports_renew:
                    await consumer.renew([item.record])
        except QueueError as exc:
            log.warning(
                "queue %s: renewing %s during its release delay failed: %s", self.group, item, exc
            )
        self._settle(item, AcknowledgeType.RELEASE)

    async def _reject(self, item: QueueItem[E], reason: str | BaseException) -> None:
        exc = reason if isinstance(reason, BaseException) else Rejected(reason, group=self.group)
        written = await self._dead_letter(item.record, exc, Stage.TASK_PUT, _QUEUE_CLASS)
        if not written:
            self._settle(item, AcknowledgeType.RELEASE)
            raise QueueError(
                f"the dead letter of {item!r} could not be written to {self.dlq_topic!r}; the "
                "item was released to be tried again",
                group=self.group,
            )
        self._settle(item, AcknowledgeType.ACCEPT)
