"""EventProducer: publish typed events to Kafka, durable when the call returns.

Each event becomes one record: the value in Confluent's Avro wire format, the key the
partitioning key, and the CloudEvents Kafka binding headers (binary mode) with the idempotency
key and W3C trace context. Producers are idempotent with ``acks=all`` by default (KIP-98), so a
retried send never duplicates a record within the producer session; :meth:`EventProducer.publish`
returns only once the broker acknowledged the record.

One path to the broker: :meth:`EventProducer.publish_batch` serializes events up front and
appends them to one aiokafka ``BatchBuilder`` per partition (``create_batch``/``send_batch``,
:mod:`~eventplatform.producer.batching`), which costs a fraction of ``send()``'s per-message
bookkeeping; all acks are awaited together once. :meth:`EventProducer.publish` submits its one
event to the producer's :class:`~eventplatform.producer.coalescer.Coalescer`, which gathers the
events of concurrent callers into such batches: each call still returns once its own record
is durable, and a bad event fails its own call only. Every wait is bounded by
``delivery_timeout`` through :class:`~eventplatform.producer.deadlines.Deadlines`, and every
Kafka failure is translated by :func:`~eventplatform.producer._errors.translate`.

A :class:`~eventplatform.errors.PublishTimeout` does not mean the event was not written (the
ack may be late or lost): it carries the events' ids and idempotency keys, and retrying with
them is safe, since consumers deduplicate by idempotency key; retrying with new ids is not.

Transactional mode (a ``transactional_id``): :meth:`EventProducer.transaction` wraps
begin/commit/abort, and :meth:`EventProducer.send_offsets_to_transaction` commits consumer
offsets with the records (consume-transform-produce, KIP-98).
"""

from __future__ import annotations

import asyncio
import logging
import time as _time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from types import TracebackType
from typing import Any, NamedTuple, Self, cast

from aiokafka import AIOKafkaProducer
from aiokafka import errors as kafka_errors
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition

from eventplatform import access
from eventplatform.cloudevents import (
    H_TRACEPARENT,
    EventMetadata,
    HeaderTemplate,
    format_time,
    new_event_id,
)
from eventplatform.errors import (
    ConfigurationError,
    EventPlatformError,
    KafkaError,
    ProducerFenced,
    PublishTimeout,
    ResourceStateError,
)
from eventplatform.observability import events as observed
from eventplatform.producer._errors import KAFKA_FAILURES, translate
from eventplatform.producer.batching import BatchPlan, KeyPartitions
from eventplatform.producer.coalescer import Coalescer
from eventplatform.producer.deadlines import Deadlines
from eventplatform.registry.base import SchemaRegistry
from eventplatform.registry.factory import open_registry
from eventplatform.schema import AvroEvent
from eventplatform.serde.serializer import AvroSerializer, PreparedWriter
from eventplatform.serde.subjects import SubjectNameStrategy
from eventplatform.settings import Settings, load_settings

__all__ = ["EventProducer", "Outgoing", "PublishResult", "RawRecord"]

log = logging.getLogger(__name__)

Key = str | bytes | None
#: A record written as it is: key, value (None: a tombstone) and headers.
RawRecord = tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes]]]


class PublishResult(NamedTuple):
    """Where a published event landed, once the broker acknowledged it."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    event_id: str
    idempotency_key: str


@dataclass(slots=True)
class Outgoing:
    """One event for :meth:`EventProducer.publish_batch`, with its per-event options."""

    event: AvroEvent
    key: Key = None
    topic: str | None = None
    idempotency_key: str | None = None
    headers: Sequence[tuple[str, bytes]] = ()
    subject: str | None = None
    event_id: str | None = None
    time: datetime | None = None
    traceparent: str | None = None
    #: CloudEvents ``source``; default the producer's.
    source: str | None = None
    metadata: EventMetadata | None = field(default=None, repr=False)

    @property
    def plain(self) -> bool:
        """Whether its metadata is an id, a source and the current time only (and maybe a
        ``traceparent``, which the fast path appends as it is)."""
        return (
            self.metadata is None
            and self.idempotency_key is None
            and self.subject is None
            and self.time is None
        )


#: A placeholder in a results list before every position is filled.
_PENDING = PublishResult("", -1, -1, -1, "", "")


class _State(Enum):
    NEW = "new"
    STARTED = "started"
    CLOSED = "closed"


def _key_bytes(key: Key) -> bytes | None:
    if key is None or isinstance(key, bytes):
        return key
    return key.encode()


#: Events one coalesced ``publish_batch`` of concurrent ``publish()`` calls takes at most.
COALESCE_MAX_BATCH = 250
#: Coalesced batches in flight at once: the next batches are encoded while the first wait for
#: their acks, so a burst of calls is not encoded whole before anything is sent.
COALESCE_IN_FLIGHT = 4


# The idempotent producer numbers each partition's batches (KIP-98) and the broker appends a
# batch only when its sequence follows the last one it appended. aiokafka numbers a batch when
# it drains it, and when it then drops it unsent -- its partition had no leader for longer
# than the request timeout, as while a single broker shuts down -- the broker refuses every
# later batch of that partition with OUT_OF_ORDER_SEQUENCE_NUMBER, for the producer's life
# (aiokafka #1017). The Java client recovers by bumping its epoch (KIP-360); aiokafka has no
# such path, so EventProducer replaces its aiokafka producer: a new producer id starts every
# sequence at 0. A refused batch was not appended, so nothing is written twice.
_SEQUENCE_LOST = (kafka_errors.OutOfOrderSequenceNumber, kafka_errors.UnknownProducerId)


class EventProducer:
    """Publish typed events. An async context manager::

        async with EventProducer(source="/services/orders") as producer:
            result = await producer.publish(OrderPlaced(...), key=order_id)

    Arguments resolve argument → settings (``EVENTPLATFORM_PRODUCER__*``) → default.

    Args:
        bootstrap_servers: Kafka cluster; default ``settings.kafka.bootstrap_servers``.
        registry: schema registry; default ``open_registry(settings)`` (owned and closed here).
        settings: all settings; default :func:`~eventplatform.settings.load_settings`.
        source: default CloudEvents ``source`` of published events.
        transactional_id: enables transactions (:meth:`transaction`).
        client_options: extra keyword arguments for ``aiokafka.AIOKafkaProducer``.
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str | None = None,
        registry: SchemaRegistry | None = None,
        settings: Settings | None = None,
        source: str | None = None,
        transactional_id: str | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        producer = self.settings.producer
        self.bootstrap_servers = bootstrap_servers or self.settings.kafka.bootstrap_servers
        if not self.bootstrap_servers:
            raise ConfigurationError(
                "no Kafka bootstrap servers: pass bootstrap_servers= or set "
                "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS"
            )
        self.source = source or producer.source
        self.transactional_id = transactional_id or producer.transactional_id
        self.delivery_timeout = producer.delivery_timeout
        self._deadlines = Deadlines(self.delivery_timeout)
        self._owns_registry = registry is None
        self._registry = registry
        self._client_options = dict(client_options or {})
        self._client: AIOKafkaProducer | None = None
        self._options: dict[str, Any] = {}
        self._replacing = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()
        self._serializer: AvroSerializer | None = None
        self._partitioner = DefaultPartitioner()
        self._key_partitions = KeyPartitions()
        self._templates: dict[tuple[type[AvroEvent], str], HeaderTemplate] = {}
        self._coalescer: Coalescer | None = None
        self._state = _State.NEW

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

    @property
    def registry(self) -> SchemaRegistry:
        """The schema registry in use.

        Raises:
            ResourceStateError: before :meth:`start`.
        """
        if self._registry is None:
            raise ResourceStateError("EventProducer.registry is not available before start()")
        return self._registry

    @property
    def client(self) -> AIOKafkaProducer:
        """The underlying aiokafka producer.

        Raises:
            ResourceStateError: before :meth:`start` or after :meth:`close`.
        """
        if self._state is not _State.STARTED or self._client is None:
            raise self._state_error()
        return self._client

    def _state_error(self) -> ResourceStateError:
        state = self._state.value
        if self._state is _State.STARTED:  # close() has begun: no new calls
            state = "closing"
        return ResourceStateError(
            f"EventProducer is {state}; use it inside `async with` or after start()"
        )

    async def start(self) -> None:
        """Connect to Kafka (and the registry, when owned).

        Raises:
            ResourceStateError: after :meth:`close`.
            KafkaError: the cluster cannot be reached.
        """
        if self._state is _State.STARTED:
            return
        if self._state is _State.CLOSED:
            raise ResourceStateError("EventProducer cannot be restarted after close()")
        producer = self.settings.producer
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.settings.kafka.client_id,
            "acks": "all",
            "enable_idempotence": producer.enable_idempotence or bool(self.transactional_id),
            "linger_ms": producer.linger_ms,
            "max_batch_size": producer.max_batch_size,
            "max_request_size": producer.max_request_size,
            "compression_type": producer.compression_type,
            # The call's deadline must outlast aiokafka's own waits (one request, a topic's
            # metadata), as Kafka's delivery.timeout.ms outlasts request.timeout.ms (KIP-91):
            # else a missing topic or an expired batch would surface as the call's
            # PublishTimeout on one path and as aiokafka's error on another.
            "request_timeout_ms": max(1, int(self.delivery_timeout * 800)),
            "transactional_id": self.transactional_id,
        }
        options = self.settings.kafka.connection_options() | options | self._client_options
        if self._registry is None:
            self._registry = open_registry(self.settings, bootstrap_servers=self.bootstrap_servers)
        if self._owns_registry:
            await self._registry.start()
        registry_settings = self.settings.registry
        self._serializer = AvroSerializer(
            self._registry,
            strategy=SubjectNameStrategy(registry_settings.subject_strategy),
            auto_register=registry_settings.auto_register,
        )
        self._options = options
        client = AIOKafkaProducer(**options)
        try:
            await client.start()
        except kafka_errors.KafkaError as exc:
            await client.stop()
            if self._owns_registry:
                await self._registry.close()
            raise await access.start_failure(
                self.settings.kafka, self.bootstrap_servers, exc, what="the producer"
            ) from exc
        self._client = client
        self._state = _State.STARTED
        self._coalescer = Coalescer(
            self, max_batch=COALESCE_MAX_BATCH, max_in_flight=COALESCE_IN_FLIGHT
        )

    async def close(self) -> None:
        """Flush pending records and disconnect. Idempotent."""
        if self._state is _State.CLOSED:
            return
        # publish() calls already submitted are published (or fail) before the client stops.
        coalescer, self._coalescer = self._coalescer, None
        if coalescer is not None:
            await coalescer.aclose()
        self._state = _State.CLOSED
        client, self._client = self._client, None
        try:
            if client is not None:
                await client.stop()
            if self._retiring:
                await asyncio.gather(*self._retiring, return_exceptions=True)
            await self._deadlines.aclose()
        finally:
            if self._owns_registry and self._registry is not None:
                await self._registry.close()

    async def _recover(self, client: AIOKafkaProducer, exc: BaseException) -> None:
        """Replace ``client`` when ``exc`` says the broker refuses its sequence numbers.

        Only for idempotent, non-transactional producers (a transactional one is fenced or
        aborts instead). The records in flight on the old client finish there (refused, or
        acknowledged to their callers); it is stopped in the background and awaited by
        :meth:`close`. When Kafka cannot be reached for the new client, the old one is kept
        and the next refusal tries again.
        """
        options = self._options
        if (
            not isinstance(exc, _SEQUENCE_LOST)
            or options.get("transactional_id")
            or not options.get("enable_idempotence")
        ):
            return
        async with self._replacing:
            if client is not self._client:
                return  # a concurrent call replaced it already, or the producer was closed
            fresh = AIOKafkaProducer(**options)
            try:
                await fresh.start()
            except kafka_errors.KafkaError as err:
                await fresh.stop()
                log.warning("could not replace a producer the broker refuses (%s): %s", exc, err)
                return
            if self._state is not _State.STARTED:  # closed while the new one started
                await fresh.stop()
                return
            stale, self._client = self._client, fresh
        log.warning(
            "the broker refused this producer's sequence numbers (%s); continuing with a new "
            "producer id (records refused meanwhile were not written)",
            type(exc).__name__,
        )
        assert stale is not None
        retiring = asyncio.create_task(stale.stop(), name="eventplatform.retire-producer")
        self._retiring.add(retiring)
        retiring.add_done_callback(self._retiring.discard)

    def topic_for(self, event: AvroEvent, topic: str | None = None) -> str:
        """The topic ``event`` goes to: ``topic``, else its class's binding.

        Raises:
            ConfigurationError: neither is set.
        """
        chosen = topic or type(event).__avro_topic__
        if not chosen:
            raise ConfigurationError(
                f"no topic for {type(event).__avro_name__}: pass topic= or bind the class "
                "(class MyEvent(AvroEvent, topic='…'))"
            )
        return chosen

    def metadata_for(self, item: Outgoing) -> EventMetadata:
        """The CloudEvents metadata of an outgoing event (fresh id and time unless given)."""
        if item.metadata is not None:
            return item.metadata
        return EventMetadata.new(
            source=item.source or self.source,
            type=type(item.event).__avro_name__,
            id=item.event_id,
            time=item.time,
            subject=item.subject,
            idempotency_key=item.idempotency_key,
            traceparent=item.traceparent,
        )

    async def _writer(self, event: AvroEvent, topic: str) -> PreparedWriter:
        assert self._serializer is not None
        writer = self._serializer.cached(type(event), topic)
        if writer is None:
            writer = await self._serializer.prepare(type(event), topic)
        return writer

    async def publish(
        self,
        event: AvroEvent,
        *,
        key: Key = None,
        idempotency_key: str | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
        topic: str | None = None,
        subject: str | None = None,
        event_id: str | None = None,
        time: datetime | None = None,
        traceparent: str | None = None,
    ) -> PublishResult:
        """Publish one event and wait until the broker acknowledged it.

        Concurrent calls are coalesced into ``publish_batch`` calls (one batch per partition,
        one wait for all acks), so many callers cost about what one batch does; each call
        still returns only once its own record is durable, and an event that cannot be
        encoded fails its own call only. Events of one key leave in the order of the calls.

        To retry after a :class:`~eventplatform.errors.PublishTimeout`, pass the ids it
        carries back as ``event_id`` and ``idempotency_key``: consumers then deduplicate the
        copies (a retry with new ids would be a second event).

        Args:
            event: the event.
            key: the Kafka key (partitioning key).
            idempotency_key: what consumers deduplicate by; default the event id.
            headers: extra record headers.
            topic: default the event class's topic.
            subject: CloudEvents ``subject``.
            event_id: CloudEvents ``id``; default a fresh UUID.
            time: CloudEvents ``time``; default now.
            traceparent: W3C trace context.

        Raises:
            ResourceStateError: the producer is not started.
            ConfigurationError: no topic for the event.
            SerializationError: the event does not fit its schema.
            RegistryError: its schema could not be registered or found.
            RecordTooLarge: the record exceeds ``max_request_size`` (nothing was sent).
            PublishTimeout: no acknowledgement within ``delivery_timeout`` (retriable); the
                event may have been written, see above.
            UnknownTopic, AuthorizationFailed, PublishUnavailable, PublishError: the broker
                refused the record (:mod:`eventplatform.producer._errors`).
            ProducerFenced: inside a transaction, another instance took over its id.
        """
        coalescer = self._coalescer
        if coalescer is None:
            raise self._state_error()
        target = self.topic_for(event, topic)
        # The id is fixed here, not when the batch is built, so that a timeout can name it.
        if event_id is None:
            event_id = new_event_id()
        future = coalescer.submit(
            Outgoing(
                event,
                key=key,
                topic=target,
                idempotency_key=idempotency_key,
                headers=headers,
                subject=subject,
                event_id=event_id,
                time=time,
                traceparent=traceparent,
            )
        )
        # Deadlines.wait, inlined: this is the per-event path of every concurrent caller.
        self._deadlines.track(future)
        try:
            return await future
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # the caller was cancelled
            # Nothing but the deadline watcher cancels the call's future.
            raise PublishTimeout(
                f"publishing to topic {target!r} was not acknowledged within "
                f"{self.delivery_timeout:g}s (event id {event_id}); it may have been written: "
                "retry with the same event id and idempotency key",
                event_ids=[event_id],
                idempotency_keys=[idempotency_key or event_id],
            ) from exc

    async def publish_batch(
        self, items: Iterable[AvroEvent | Outgoing], *, topic: str | None = None
    ) -> list[PublishResult]:
        """Publish many events with one wait for all acknowledgements.

        Results come in the order of ``items``. Events of one key land in one partition in
        their order. Every event is serialized and placed in its partition's batch before the
        first batch is sent, so a bad event fails the call with nothing written. After that
        the call is all-or-error: when it raises, some events may have been written (each
        keeps its event id and idempotency key, so a retry of the whole batch with the same
        ids is deduplicated by consumers; a :class:`~eventplatform.errors.PublishTimeout`
        carries them). Events without their own id or time get fresh ids and the call's time.

        Traced (:func:`~eventplatform.observability.events.instrument`), the call is one
        ``send`` span with ``messaging.batch.message_count``, the creation context of the
        events that carry no ``traceparent`` of their own.

        Raises:
            The errors of :meth:`publish`.
        """
        if observed.SWITCHES.sending:
            outcomes = await self._observed_batch(items, topic)
        else:
            outcomes = await self._publish_outcomes(items, topic=topic)
        for outcome in outcomes:
            if not isinstance(outcome, PublishResult):
                raise outcome
        return cast(list[PublishResult], outcomes)

    async def _observed_batch(
        self, items: Iterable[AvroEvent | Outgoing], topic: str | None
    ) -> list[PublishResult | EventPlatformError]:
        """:meth:`publish_batch`, timed and traced as one call (one ``send`` span)."""
        entries = items if isinstance(items, list) else list(items)
        target = topic
        if target is None and entries:
            first = entries[0]
            event = first.event if isinstance(first, Outgoing) else first
            target = (first.topic if isinstance(first, Outgoing) else None) or type(
                event
            ).__avro_topic__
        sending = observed.send_started(None, target or "", len(entries))
        try:
            outcomes = await self._publish_outcomes(
                entries, topic=topic, traceparent=sending.traceparent
            )
        except BaseException as exc:
            observed.send_finished(sending, exc)
            raise
        observed.batch_finished(sending, outcomes)
        return outcomes

    async def _publish_outcomes(
        self,
        items: Iterable[AvroEvent | Outgoing | EventPlatformError],
        *,
        topic: str | None = None,
        isolate: bool = False,
        stop: Callable[[int], bool] | None = None,
        traceparent: str | None = None,
    ) -> list[PublishResult | EventPlatformError]:
        """Each event's result, or the error that kept it from being written.

        A batch the broker refuses or does not acknowledge in time is the error of its own
        events (another partition's batch may have been written). Failures before anything
        is sent (encoding, schema, topic lookup, size) raise with nothing written, unless
        ``isolate``: then each is its event's outcome and the other events are published (an
        item that is an error already counts as such a failure); when ``stop(position)`` is
        true for a failed event, the events after it are not sent and share its error.
        """
        plan = self._plan()  # raises if the producer is not started
        serializer = self._serializer
        assert serializer is not None
        entries = items if isinstance(items, list) else list(items)
        count = len(entries)
        if not count:
            return []
        now = datetime.now(UTC)
        timestamp = int(now.timestamp() * 1000)
        stamp = format_time(now).encode()
        templates = self._templates
        # Per event only flat lists of str (the ids), so a batch leaves little for the
        # cyclic garbage collector to walk while it waits for its acks.
        event_ids: list[str] = [""] * count
        idempotency_keys: list[str] = [""] * count
        outcomes: list[PublishResult | EventPlatformError] = [_PENDING] * count
        unknown: dict[str, EventPlatformError] = {}  # topics whose lookup failed
        batch_trace = (H_TRACEPARENT, traceparent.encode()) if traceparent else None
        for position, entry in enumerate(entries):
            try:
                if isinstance(entry, EventPlatformError):
                    raise entry
                if type(entry) is Outgoing:
                    item, event, key = entry, entry.event, _key_bytes(entry.key)
                    target = self.topic_for(event, entry.topic or topic)
                else:
                    item, event, key = None, cast(AvroEvent, entry), None
                    target = self.topic_for(event, topic)
                event_type = type(event)
                writer = serializer.cached(event_type, target)
                if writer is None:
                    writer = await self._writer(event, target)
                value = writer.encode(event)
                if item is None or item.plain:
                    source = item.source or self.source if item else self.source
                    event_id = item.event_id if item and item.event_id else new_event_id()
                    template = templates.get((event_type, source))
                    if template is None:
                        template = templates[(event_type, source)] = HeaderTemplate(
                            source, event_type.__avro_name__
                        )
                    extra = item.headers if item else ()
                    if item is not None and item.traceparent:
                        extra = (*extra, (H_TRACEPARENT, item.traceparent.encode()))
                    elif batch_trace is not None:
                        extra = (*extra, batch_trace)
                    headers = template.headers(event_id, stamp, extra)
                    event_ids[position] = idempotency_keys[position] = event_id
                else:
                    meta = self.metadata_for(item)
                    headers = meta.to_headers(item.headers)
                    if batch_trace is not None and not meta.traceparent:
                        headers.append(batch_trace)
                    event_ids[position] = meta.id
                    idempotency_keys[position] = meta.idempotency_key
                if not plan.knows(target):
                    if target in unknown:
                        raise unknown[target]
                    try:
                        await self._learn(plan, target)
                    except EventPlatformError as exc:
                        unknown[target] = exc
                        raise
                plan.append(position, target, key, value, headers, timestamp)
            except EventPlatformError as exc:
                if not isolate:
                    raise
                outcomes[position] = exc
                if stop is not None and stop(position):
                    outcomes[position + 1 :] = [exc] * (count - position - 1)
                    break
        if plan.batches:
            await self._ship(plan, outcomes, timestamp, event_ids, idempotency_keys)
        return outcomes

    def _plan(self) -> BatchPlan:
        return BatchPlan(
            self.client,
            self._partitioner,
            self._key_partitions,
            max_record_bytes=self._options.get("max_request_size"),
        )

    async def _learn(self, plan: BatchPlan, topic: str) -> None:
        """Look up the partitions of ``topic`` for ``plan`` (before anything is sent).

        Raises:
            UnknownTopic, AuthorizationFailed, PublishTimeout, PublishError: as translated.
        """
        try:
            await plan.learn(topic)
        except KAFKA_FAILURES as exc:
            raise translate(
                exc, topic=topic, doing="looking up the partitions", kafka=self.settings.kafka
            ) from exc

    async def _ship(
        self,
        plan: BatchPlan,
        outcomes: list[PublishResult | EventPlatformError],
        timestamp: int,
        event_ids: Sequence[str] | None = None,
        idempotency_keys: Sequence[str] | None = None,
    ) -> None:
        """Send every batch of ``plan``, wait for all acks; set each record's outcome.

        Raw records (no ``event_ids``) get empty event ids and idempotency keys.
        """
        client = self.client
        try:
            futures = await plan.send()
        except KAFKA_FAILURES as exc:
            await self._recover(client, exc)
            error = self._translate_batch(exc, plan, event_ids, idempotency_keys)
            error.__cause__ = exc
            for batch in plan.batches:
                for position in batch.positions:
                    outcomes[position] = error
            return
        gathered = asyncio.gather(*futures, return_exceptions=True)
        try:
            acks = await self._deadlines.wait(gathered)
        except TimeoutError as exc:
            positions = [p for batch in plan.batches for p in batch.positions]
            error = PublishTimeout(
                f"{len(positions)} records to topic {plan.batches[0].topic!r} were not "
                f"acknowledged within {self.delivery_timeout:g}s; they may have been written: "
                "retry with the same event ids and idempotency keys",
                event_ids=[event_ids[p] for p in positions] if event_ids else (),
                idempotency_keys=[idempotency_keys[p] for p in positions]
                if idempotency_keys
                else (),
            )
            error.__cause__ = exc
            for position in positions:
                outcomes[position] = error
            return
        for batch, ack in zip(plan.batches, acks, strict=True):
            if isinstance(ack, BaseException):
                await self._recover(client, ack)
                positions = batch.positions
                error = translate(
                    ack,
                    topic=batch.topic,
                    transactional_id=self.transactional_id,
                    event_ids=[event_ids[p] for p in positions] if event_ids else (),
                    idempotency_keys=[idempotency_keys[p] for p in positions]
                    if idempotency_keys
                    else (),
                    kafka=self.settings.kafka,
                )
                error.__cause__ = ack
                for position in positions:
                    outcomes[position] = error
                continue
            base, topic, partition = ack.offset, batch.topic, batch.partition
            for position, relative in zip(batch.positions, batch.offsets, strict=True):
                outcomes[position] = PublishResult(
                    topic,
                    partition,
                    base + relative,
                    timestamp,
                    event_ids[position] if event_ids is not None else "",
                    idempotency_keys[position] if idempotency_keys is not None else "",
                )

    def _translate_batch(
        self,
        exc: BaseException,
        plan: BatchPlan,
        event_ids: Sequence[str] | None,
        idempotency_keys: Sequence[str] | None,
    ) -> EventPlatformError:
        return translate(
            exc,
            topic=plan.batches[0].topic if plan.batches else None,
            transactional_id=self.transactional_id,
            event_ids=event_ids or (),
            idempotency_keys=idempotency_keys or (),
            kafka=self.settings.kafka,
        )

    async def send_raw_batch(self, topic: str, records: Iterable[RawRecord]) -> list[PublishResult]:
        """Write many ``(key, value, headers)`` records as they are, with one wait for all acks.

        The batch counterpart of :meth:`send_raw` (delivery histories, relays); results come
        in the order of ``records``, with empty event ids.

        Raises:
            The errors of :meth:`publish_batch`.
        """
        plan = self._plan()
        await self._learn(plan, topic)
        timestamp = int(_time.time() * 1000)
        count = 0
        for position, (key, value, headers) in enumerate(records):
            plan.append(position, topic, key, value, list(headers), timestamp)
            count += 1
        if not count:
            return []
        outcomes: list[PublishResult | EventPlatformError] = [_PENDING] * count
        await self._ship(plan, outcomes, timestamp)
        for outcome in outcomes:
            if not isinstance(outcome, PublishResult):
                raise outcome
        return cast(list[PublishResult], outcomes)

    async def send_raw(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> PublishResult:
        """Write bytes as they are (dead-letter records, relays) and wait for the ack.

        Raises:
            The errors of :meth:`publish_batch`.
        """
        client = self.client
        try:
            future = await client.send(topic, value, key=key, headers=list(headers))
            record = await self._deadlines.wait(future)
        except TimeoutError as exc:
            raise PublishTimeout(
                f"writing to topic {topic!r} was not acknowledged within "
                f"{self.delivery_timeout:g}s; it may have been written"
            ) from exc
        except KAFKA_FAILURES as exc:
            await self._recover(client, exc)
            raise translate(
                exc,
                topic=topic,
                transactional_id=self.transactional_id,
                kafka=self.settings.kafka,
            ) from exc
        return PublishResult(
            record.topic, record.partition, record.offset, record.timestamp, "", ""
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """A Kafka transaction: everything published inside commits or aborts together.

        Raises:
            ConfigurationError: the producer has no ``transactional_id``.
            ProducerFenced: another instance took over the transactional id (KIP-98); this
                producer cannot go on.
            PublishError: the commit failed (the transaction was aborted).
        """
        client = self.client
        if not self.transactional_id:
            raise ConfigurationError(
                "transactions need a transactional_id (EventProducer(transactional_id=…) or "
                "EVENTPLATFORM_PRODUCER__TRANSACTIONAL_ID)"
            )
        try:
            await client.begin_transaction()
        except KAFKA_FAILURES as exc:
            raise self._translate_txn(exc, "beginning a transaction") from exc
        try:
            yield
        except BaseException as exc:
            txn = client._txn_manager
            if txn is not None and txn.is_fatal_error():
                # Fenced (KIP-98): nothing can be aborted, and aiokafka refuses to try.
                if isinstance(exc, KafkaError | kafka_errors.KafkaError) and not isinstance(
                    exc, ProducerFenced
                ):
                    raise self._translate_txn(
                        kafka_errors.ProducerFenced(), "publishing in a transaction"
                    ) from exc
                raise
            try:
                await client.abort_transaction()
            except KAFKA_FAILURES:
                log.exception("aborting transaction %s failed", self.transactional_id)
            raise
        try:
            await client.commit_transaction()
        except KAFKA_FAILURES as exc:
            raise self._translate_txn(
                exc, f"committing transaction {self.transactional_id!r}"
            ) from exc

    def _translate_txn(self, exc: BaseException, doing: str) -> EventPlatformError:
        return translate(
            exc, doing=doing, transactional_id=self.transactional_id, kafka=self.settings.kafka
        )

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group_id: str
    ) -> None:
        """Commit consumer ``offsets`` of ``group_id`` in the current transaction.

        Raises:
            ProducerFenced: this producer was fenced.
            PublishError: the broker refused.
        """
        try:
            await self.client.send_offsets_to_transaction(dict(offsets), group_id)
        except KAFKA_FAILURES as exc:
            raise self._translate_txn(
                exc, f"sending offsets of group {group_id!r} to the transaction"
            ) from exc
