"""Webhook egress: events of a topic POSTed to subscriber URLs, signed, retried, recorded.

An instance::

    # connectors/orders-out.toml
    type = "webhook-egress"
    topic = "orders"

    [settings]
    retry_schedule = [5, 300, 1800, 7200, 18000, 36000, 36000]   # Svix's, the default

    [[settings.endpoints]]
    name = "billing"
    url = "https://billing.example.com/webhooks"
    secret = "${BILLING_WEBHOOK_SECRET}"                 # whsec_…
    event_types = ["com.example.orders.OrderPlaced"]     # or "com.example.orders.*", "*"

Every event of the topic goes to each endpoint subscribed to its ``ce_type`` as a Standard
Webhooks delivery (:mod:`~eventplatform.connectors.builtin.egress.deliveries` has the body,
:mod:`~.endpoints` the signing, answers and retries). The connector
names no event type: events are decoded with their writer schema, so one egress forwards every
type of its topic; an ``event_type``, when given, restricts it to that type.

**Why it runs its own consumer** rather than a :class:`~eventplatform.connectors.Sink`'s
EventApp: an EventApp commits an event's offset once its handler returned, so one endpoint
retrying for hours would hold up every endpoint. Here each endpoint has a queue of its own;
the consumer keeps reading while deliveries are pending (up to ``max_in_flight`` unsettled
events, then it pauses) and commits, per partition, the offset of the first event whose
deliveries are not all settled (:mod:`~.watermarks`). A delivery is
settled when it was delivered, skipped (endpoint disabled), or dead-lettered with its
acknowledgement from Kafka. After a crash the unsettled events and the ones after them are
delivered again, with the same ``webhook-id``: receivers deduplicate (Standard Webhooks
deliveries are at-least-once).

**Recorded**: every attempt goes to ``<name>.deliveries`` as a JSON record (event id,
endpoint, attempt, status code, latency, outcome). **Dead letters** (schedule exhausted, or an
address the SSRF guard refuses; also records that cannot be decoded) go to ``<topic>.dlq``
with Kafka Connect's error headers (:mod:`eventplatform.app.dlq`) plus
``eventplatform.egress.endpoint`` and ``eventplatform.egress.url``.

**SSRF guard**: deliveries only go to global unicast addresses, checked when connecting
(:mod:`~.destinations`), unless ``allow_private_addresses = true``.
One :class:`aiohttp.ClientSession` with a connection pool serves every endpoint.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any, ClassVar

import aiohttp
from aiokafka import AIOKafkaConsumer
from aiokafka import errors as kafka_errors
from aiokafka.abc import ConsumerRebalanceListener
from pydantic import Field, model_validator

from eventplatform.app.dlq import DeadLetter, DeadLetterQueue, Stage
from eventplatform.app.retry import RetryPolicy
from eventplatform.cloudevents import EventMetadata
from eventplatform.connectors.builtin.egress.deliveries import (
    SVIX_SCHEDULE,
    DeliveryRecorder,
    RetrySchedule,
    webhook_body,
)
from eventplatform.connectors.builtin.egress.destinations import (
    AddressPolicy,
    GuardedResolver,
    check_url,
)
from eventplatform.connectors.builtin.egress.endpoints import (
    DEFAULT_STATE_TOPIC,
    SESSION_HEADERS,
    EndpointStates,
    EndpointWorker,
    PendingEvent,
    WebhookEndpoint,
)
from eventplatform.connectors.builtin.egress.watermarks import OffsetTracker
from eventplatform.connectors.runtime.compacted import CompactedTable
from eventplatform.connectors.sdk.connector import Connector, ConnectorConfig
from eventplatform.errors import (
    DeserializationError,
    KafkaError,
    RegistryUnavailable,
    ResourceStateError,
    UnsafeDestination,
)
from eventplatform.producer import EventProducer
from eventplatform.serde import AvroDeserializer, read_header

__all__ = ["WebhookEgress", "WebhookEgressConfig"]

log = logging.getLogger("eventplatform.connectors.egress")

TP = Any  # aiokafka TopicPartition
H_ENDPOINT = "eventplatform.egress.endpoint"
H_URL = "eventplatform.egress.url"
#: Event types whose subscribed endpoints are remembered (a topic has a few).
_MAX_TYPES_KEPT = 1024
_CLASS_NAME = "eventplatform.connectors.builtin.egress.connector.WebhookEgress"


class WebhookEgressConfig(ConnectorConfig):
    """Settings of a webhook egress (the ``[settings]`` table)."""

    endpoints: list[WebhookEndpoint] = Field(min_length=1, description="The subscribers.")
    retry_schedule: list[float] = Field(
        default=list(SVIX_SCHEDULE),
        description="Seconds to wait after each failed attempt; attempts = its length + 1.",
    )
    max_retry_after: float = Field(
        default=36000.0, ge=0, description="The longest wait a Retry-After answer may ask for."
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds one attempt may take.")
    max_connections: int = Field(default=100, gt=0, description="Connection pool size.")
    max_in_flight: int = Field(
        default=10_000, gt=0, description="Events read but not settled before reading pauses."
    )
    max_poll_records: int = Field(default=500, gt=0)
    allow_private_addresses: bool = Field(
        default=False, description="Allow loopback, private and link-local destinations."
    )
    group_id: str | None = Field(default=None, description="Default connect-<name>.")
    dlq_topic: str | None = Field(default=None, description="Default <topic>.dlq.")
    deliveries_topic: str | None = Field(default=None, description="Default <name>.deliveries.")
    record_deliveries: bool = Field(default=True, description="Record attempts in a topic.")
    state_topic: str = Field(
        default=DEFAULT_STATE_TOPIC, description="Compacted topic of disabled endpoints."
    )
    stop_grace: float = Field(
        default=5.0, gt=0, description="Seconds attempts in flight get to finish on stop."
    )

    @model_validator(mode="after")
    def _check(self) -> WebhookEgressConfig:
        if any(delay < 0 for delay in self.retry_schedule):
            raise ValueError("retry_schedule: waits must be >= 0 seconds")
        names = [endpoint.name for endpoint in self.endpoints]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"endpoints: two are named {twice[0]!r}")
        policy = AddressPolicy(self.allow_private_addresses)
        for endpoint in self.endpoints:
            try:
                check_url(endpoint.url, policy)
            except UnsafeDestination as exc:
                raise ValueError(f"endpoints: {endpoint.name}: {exc}") from None
        return self


class WebhookEgress(Connector[WebhookEgressConfig]):
    """Topic → webhook endpoints (see the module docstring)."""

    role: ClassVar[str] = "sink"
    requires_event_type: ClassVar[bool] = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        config = self.config
        self.group_id = config.group_id or f"connect-{self.name}"
        suffix = self.settings.consumer.dlq_suffix
        self.dlq_topic = config.dlq_topic or f"{self.topic}{suffix}"
        self.deliveries_topic = config.deliveries_topic or f"{self.name}.deliveries"
        self.schedule = RetrySchedule(tuple(config.retry_schedule), config.max_retry_after)
        self._workers: dict[str, EndpointWorker] = {}
        # The workers subscribed to each event type seen (the endpoints are fixed).
        self._subscribers: dict[str, list[EndpointWorker]] = {}
        self._trackers: dict[TP, OffsetTracker] = {}
        self._committed: dict[TP, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: EventProducer | None = None
        self._session: aiohttp.ClientSession | None = None
        self._states: EndpointStates | None = None
        self._deserializer: AvroDeserializer | None = None
        self._dlq: DeadLetterQueue | None = None
        self._recorder: DeliveryRecorder | None = None
        self._settled = asyncio.Event()

    @property
    def endpoints(self) -> Sequence[WebhookEndpoint]:
        """The configured endpoints."""
        return self.config.endpoints

    def delivery_outcomes(self) -> dict[tuple[str, str], int]:
        """Delivery attempts since this instance started, by (endpoint, outcome): what the
        deliveries topic records, counted (``eventplatform_egress_deliveries_total``)."""
        return {
            (name, outcome): count
            for name, worker in self._workers.items()
            for outcome, count in worker.outcomes.items()
        }

    @property
    def states(self) -> EndpointStates:
        """Which endpoints are disabled (and :meth:`EndpointStates.enable`).

        Raises:
            ResourceStateError: before :meth:`start`.
        """
        if self._states is None:
            raise ResourceStateError(f"{self!r}: endpoint states are available after start()")
        return self._states

    # -- lifecycle -----------------------------------------------------------------------------

    async def _open(self, stack: AsyncExitStack) -> None:
        await super()._open(stack)
        config, settings = self.config, self.settings
        producer = EventProducer(
            bootstrap_servers=self.bootstrap_servers, registry=self._registry, settings=settings
        )
        await producer.start()
        stack.push_async_callback(producer.close)
        self._producer = producer
        if config.record_deliveries:
            recorder = DeliveryRecorder(producer, self.deliveries_topic)
            stack.push_async_callback(recorder.close)
            self._recorder = recorder
        table = CompactedTable(
            config.state_topic, bootstrap_servers=self.bootstrap_servers, settings=settings
        )
        await table.start()
        stack.push_async_callback(table.close)
        self._states = EndpointStates(table, self.name)
        policy = AddressPolicy(config.allow_private_addresses)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=config.max_connections, resolver=GuardedResolver(policy)
            ),
            # Cookies set by one subscriber must never travel to another.
            cookie_jar=aiohttp.DummyCookieJar(),
            headers=SESSION_HEADERS,
            # No timeout of aiohttp's: each endpoint worker bounds its attempts itself, with
            # one timer rather than one per request (EndpointWorker._expire).
            timeout=aiohttp.ClientTimeout(),
        )
        stack.push_async_callback(session.close)
        self._session = session
        assert self._registry is not None
        self._deserializer = AvroDeserializer(self._registry)
        self._dlq = DeadLetterQueue(
            connector=self.name,
            task_id=socket.gethostname(),
            group=self.group_id,
            policy=RetryPolicy.from_settings(settings.consumer.retry),
            pause=self._pause,
        )
        self._consumer = await self._open_consumer(stack)

    async def _open_consumer(self, stack: AsyncExitStack) -> AIOKafkaConsumer:
        kafka, consumer_settings = self.settings.kafka, self.settings.consumer
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": f"{kafka.client_id}-{self.name}",
            "group_id": self.group_id,
            # Offsets are committed here, and only below the first unsettled event.
            "enable_auto_commit": False,
            "auto_offset_reset": consumer_settings.auto_offset_reset,
            "isolation_level": "read_committed",
            "max_poll_records": self.config.max_poll_records,
            "session_timeout_ms": consumer_settings.session_timeout_ms,
            "heartbeat_interval_ms": consumer_settings.heartbeat_interval_ms,
        }
        options = kafka.connection_options() | options
        consumer = AIOKafkaConsumer(**options)
        consumer.subscribe([self.topic], listener=_Listener(self))
        try:
            await consumer.start()
        except kafka_errors.KafkaError as exc:
            await consumer.stop()
            raise KafkaError(f"cannot connect to Kafka at {self.bootstrap_servers}: {exc}") from exc
        stack.push_async_callback(consumer.stop)
        return consumer

    async def _pause(self, delay: float) -> bool:
        if self.stopping:
            return False
        await self.idle(delay)
        return not self.stopping

    # -- the loop ------------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._session is not None
        assert self._states is not None
        assert self._consumer is not None
        self._subscribers.clear()
        for endpoint in self.config.endpoints:
            self._workers[endpoint.name] = EndpointWorker(
                connector=self.name,
                endpoint=endpoint,
                session=self._session,
                schedule=self.schedule,
                timeout=self.config.timeout,
                states=self._states,
                record=self._recorder.add_rendered if self._recorder is not None else None,
                dead_letter=self._dead_letter_delivery,
                stopping=self._stopping,
                stats=self.stats,
            )
        tasks = [
            asyncio.create_task(worker.run(), name=f"egress {self.name}: {name}")
            for name, worker in self._workers.items()
        ]
        try:
            await self._consume(self._consumer)
        finally:
            done, running = await asyncio.wait(tasks, timeout=self.config.stop_grace)
            for task in running:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("egress %s: a worker failed", self.name, exc_info=task.exception())
            await self._commit()

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        loop = asyncio.get_running_loop()
        next_commit = loop.time()
        failures = 0
        while not self.stopping:
            self._apply_backpressure(consumer)
            try:
                polled = await consumer.getmany(
                    timeout_ms=200, max_records=self.config.max_poll_records
                )
            except kafka_errors.KafkaError as exc:
                if not (exc.retriable or isinstance(exc, kafka_errors.KafkaConnectionError)):
                    raise KafkaError(f"egress {self.name}: consuming failed: {exc}") from exc
                failures += 1
                log.warning("egress %s: poll failed (%s); retrying", self.name, exc)
                await self.idle(min(10.0, 0.2 * 2**failures))
                continue
            failures = 0
            if polled and not await self._take(consumer, polled):
                await self.idle(1.0)
            if loop.time() >= next_commit:
                await self._commit()
                next_commit = loop.time() + 1.0

    def _apply_backpressure(self, consumer: AIOKafkaConsumer) -> None:
        unsettled = sum(tracker.unsettled for tracker in self._trackers.values())
        assigned = consumer.assignment()
        if unsettled >= self.config.max_in_flight:
            consumer.pause(*assigned)
        elif consumer.paused():
            consumer.resume(*consumer.paused())

    async def _take(self, consumer: AIOKafkaConsumer, polled: dict[TP, list[Any]]) -> bool:
        """Queue a poll's events to their endpoints; False when it must be read again later."""
        assert self._deserializer is not None
        ids = set()
        for records in polled.values():
            for record in records:
                try:
                    ids.add(read_header(record.value))
                except DeserializationError:
                    continue  # dead-lettered below
        try:
            await self._deserializer.ensure(ids)
        except RegistryUnavailable as exc:
            log.warning("egress %s: registry unavailable (%s); reading again", self.name, exc)
            for tp, records in polled.items():
                consumer.seek(tp, records[0].offset)
            return False
        for tp, records in polled.items():
            tracker = self._trackers.get(tp)
            if tracker is None:
                tracker = self._trackers[tp] = OffsetTracker(self._settled.set)
            for record in records:
                await self._queue(record, tracker)
        return True

    async def _queue(self, record: Any, tracker: OffsetTracker) -> None:
        assert self._deserializer is not None
        where = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        try:
            metadata = EventMetadata.from_headers(record.headers, **where)
        except DeserializationError as exc:
            tracker.track(record.offset, 1)
            await self._dead_letter_record(record, exc, Stage.HEADER_CONVERTER)
            tracker.settle(record.offset)
            return
        try:
            schema_id, value = await self._deserializer.deserialize_generic(record.value, **where)
        except DeserializationError as exc:
            tracker.track(record.offset, 1)
            await self._dead_letter_record(record, exc, Stage.VALUE_CONVERTER)
            tracker.settle(record.offset)
            return
        if self.event_type is not None:
            writer = await self._deserializer.writer_schema(schema_id)
            name = writer.parsed.get("name") if isinstance(writer.parsed, dict) else None
            if name != self.event_type.__avro_name__:
                tracker.track(record.offset, 0)
                self.stats.count("unhandled")
                return
        workers = self._subscribers.get(metadata.type)
        if workers is None:
            workers = [w for w in self._workers.values() if w.endpoint.matches(metadata.type)]
            if len(self._subscribers) < _MAX_TYPES_KEPT:
                self._subscribers[metadata.type] = workers
        tracker.track(record.offset, len(workers))
        if not workers:
            self.stats.count("unsubscribed")
            return
        event = PendingEvent(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=record.headers,
            metadata=metadata,
            body=webhook_body(metadata, value),
            tracker=tracker,
        )
        for worker in workers:
            worker.submit(event)

    # -- offsets -------------------------------------------------------------------------------

    async def _commit(self, only: set[TP] | None = None) -> None:
        """Commit, per partition, below the first unsettled event (never backwards)."""
        consumer = self._consumer
        if consumer is None:
            return
        assigned = consumer.assignment()
        offsets = {}
        for tp, tracker in self._trackers.items():
            if only is not None and tp not in only:
                continue
            position = tracker.committable
            if position is not None and tp in assigned and position > self._committed.get(tp, -1):
                offsets[tp] = position
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (kafka_errors.CommitFailedError, kafka_errors.IllegalStateError) as exc:
            log.info("egress %s: commit refused after a rebalance: %s", self.name, exc)
            return
        except kafka_errors.KafkaError as exc:
            log.warning("egress %s: offset commit failed (retried later): %s", self.name, exc)
            return
        self._committed.update(offsets)

    async def _revoked(self, revoked: set[TP]) -> None:
        await self._commit(only=revoked)
        for tp in revoked:
            tracker = self._trackers.pop(tp, None)
            if tracker is not None:
                tracker.revoked = True  # its queued events are dropped: the new owner has them
            self._committed.pop(tp, None)

    # -- records and dead letters --------------------------------------------------------------

    async def _dead_letter_delivery(
        self, event: PendingEvent, endpoint: WebhookEndpoint, error: BaseException, attempts: int
    ) -> bool:
        headers = [
            *event.headers,
            (H_ENDPOINT, endpoint.name.encode()),
            (H_URL, endpoint.url.encode()),
        ]
        return await self._write_letter(event, headers, Stage.TASK_PUT, error, attempts)

    async def _dead_letter_record(self, record: Any, error: BaseException, stage: Stage) -> None:
        log.error(
            "egress %s: %s[%d]@%d cannot be decoded, dead-lettering it: %s",
            self.name,
            record.topic,
            record.partition,
            record.offset,
            error,
        )
        self.stats.failed(error)
        self.stats.count("undecodable")
        if not await self._write_letter(record, list(record.headers), stage, error, 0):
            raise KafkaError(
                f"egress {self.name}: the dead letter of {record.topic}[{record.partition}]@"
                f"{record.offset} could not be written to {self.dlq_topic}"
            )

    async def _write_letter(
        self,
        source: Any,
        headers: Sequence[tuple[str, bytes]],
        stage: Stage,
        error: BaseException,
        attempts: int,
    ) -> bool:
        """Dead-letter ``source`` (a ConsumerRecord or a PendingEvent: topic, partition, offset,
        key and value); False when the write failed."""
        assert self._dlq is not None
        letter = self._dlq.letter(
            dlq_topic=self.dlq_topic,
            topic=source.topic,
            partition=source.partition,
            offset=source.offset,
            key=source.key,
            value=source.value,
            headers=headers,
            stage=stage,
            class_name=_CLASS_NAME,
            exc=error,
            attempts=attempts,
        )
        return await self._dlq.write(letter, self._send_letter)

    async def _send_letter(self, letter: DeadLetter) -> None:
        assert self._producer is not None
        await self._producer.send_raw(
            letter.topic, letter.value, key=letter.key, headers=letter.headers
        )


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what settled before partitions move, and drops their queued events."""

    def __init__(self, egress: WebhookEgress) -> None:
        self._egress = egress

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        await self._egress._revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[Any]) -> None:
        log.info("egress %s: assigned %s", self._egress.name, sorted(map(tuple, assigned)))
