"""Coalescing concurrent publishes into batches: many callers, one acknowledgement wait.

A request-reply source such as the webhook ingress publishes one event per request and may
answer only once Kafka acknowledged it (DESIGN.md, "Guarantees"). Publishing each event by
itself costs aiokafka's per-message ``send()`` bookkeeping and one acknowledgement wait per
request. :class:`Coalescer` instead queues what concurrent callers submit and ships it through
:meth:`EventProducer.publish_batch <eventplatform.producer.EventProducer.publish_batch>`:
one batch per partition, one wait for all acknowledgements, and each caller gets its own
:class:`~eventplatform.producer.PublishResult` or error.

Batches form by themselves, Nagle-style, without a timer: while batches are in flight the
next one gathers, so an idle coalescer ships a lone event at once and a busy one ships up to
``max_batch`` events per round trip. A few batches may be in flight at once, but never two
with events of the same key: an event whose key is in flight waits for that batch, so the
events of one key leave in the order they were submitted and keep it in their partition.
(Two concurrent ``publish_batch`` calls may interleave within a partition -- aiokafka's
``add_batch`` waits for a partition's pending batch to drain while a later call appends to
another partition -- which is why the coalescer, not the producer, keeps the order.)
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from aiokafka import errors as kafka_errors

from eventplatform.errors import (
    EventPlatformError,
    KafkaError,
    PublishError,
    PublishTimeout,
    RecordTooLarge,
    ResourceStateError,
)
from eventplatform.producer import EventProducer, Outgoing, PublishResult

__all__ = ["Coalescer", "blames_one_event", "translate_kafka_error"]

log = logging.getLogger("eventplatform.connectors")

_Pending = tuple[Outgoing, "asyncio.Future[PublishResult]"]


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


def blames_one_event(exc: BaseException) -> bool:
    """Whether a failed ``publish_batch`` may be the fault of one event, not of the batch.

    ``publish_batch`` encodes every event (and resolves its schema) before it sends the
    first, so a failure that is not Kafka's (a serialization, schema or configuration error)
    left nothing written, and publishing the events one by one tells which is bad. After a
    Kafka failure some events may have been written, and their order is not known, so it
    concerns every event of the batch alike.
    """
    if isinstance(exc, RecordTooLarge):
        return True  # refused before anything was sent
    return not isinstance(exc, KafkaError | kafka_errors.KafkaError | OSError | TimeoutError)


class Coalescer:
    """Gathers events submitted concurrently and publishes them together (module docstring).

    An async context manager; :meth:`aclose` publishes what was submitted before it returns.

    Up to ``max_in_flight`` batches are in flight at once, so that aiokafka already holds a
    partition's next batch when the one in flight is acknowledged (it sends one batch per
    partition at a time). A batch takes the waiting events in order, except those whose key
    is in a batch still in flight: they wait for it, so a key's events are never in two
    concurrent ``publish_batch`` calls and keep their order.

    Args:
        producer: a started producer, used only through its public API (so its recovery
            from refused sequence numbers and its delivery timeout apply).
        max_batch: events per ``publish_batch`` call at most.
        max_in_flight: ``publish_batch`` calls at once at most.
        on_published: called with the number of events each shipped batch made durable.
        on_failed: called with each failed batch's error.

    Raises:
        ValueError: ``max_batch`` or ``max_in_flight`` is below 1.
    """

    def __init__(
        self,
        producer: EventProducer,
        *,
        max_batch: int = 500,
        max_in_flight: int = 2,
        on_published: Callable[[int], object] | None = None,
        on_failed: Callable[[BaseException], object] | None = None,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be at least 1")
        self.producer = producer
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._on_published = on_published
        self._on_failed = on_failed
        self._pending: deque[_Pending] = deque()
        self._flights: set[asyncio.Task[None]] = set()
        self._busy_keys: set[str | bytes] = set()
        self._in_flight = 0
        self._scheduled = False
        self._closed = False

    async def __aenter__(self) -> Coalescer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __len__(self) -> int:
        """Events submitted and not yet settled (queued or in flight)."""
        return len(self._pending) + self._in_flight

    def submit(self, item: Outgoing) -> asyncio.Future[PublishResult]:
        """Queue ``item``; the future resolves once it is durable, or fails with why not.

        Raises:
            ResourceStateError: after :meth:`aclose`.
        """
        if self._closed:
            raise ResourceStateError("the coalescer is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[PublishResult] = loop.create_future()
        self._pending.append((item, future))
        if not self._scheduled and len(self._flights) < self.max_in_flight:
            # Shipped on the next loop iteration, not now: the callers already runnable in
            # this one submit first, so even the first batch of a burst coalesces.
            self._scheduled = True
            loop.call_soon(self._ship)
        return future

    async def publish(self, item: Outgoing) -> PublishResult:
        """Submit ``item`` and wait until it is durable.

        Raises:
            ResourceStateError: after :meth:`aclose`.
            The errors of :meth:`EventProducer.publish_batch
            <eventplatform.producer.EventProducer.publish_batch>`.
        """
        return await self.submit(item)

    async def aclose(self) -> None:
        """Refuse new events and wait until every submitted one is settled. Idempotent."""
        self._closed = True
        while self._flights or self._pending:
            if self._flights:
                await asyncio.shield(asyncio.gather(*self._flights, return_exceptions=True))
            else:  # a shipment is scheduled on the loop
                await asyncio.sleep(0)

    def _ship(self) -> None:
        """Start batches from the waiting events while fewer than ``max_in_flight`` fly."""
        self._scheduled = False
        pending, busy = self._pending, self._busy_keys
        while pending and len(self._flights) < self.max_in_flight:
            batch: list[_Pending] = []
            held: deque[_Pending] = deque()
            keys: set[str | bytes] = set()
            while pending and len(batch) < self.max_batch:
                entry = pending.popleft()
                key = entry[0].key
                if key is not None and key in busy:
                    held.append(entry)  # waits for the batch in flight with its key
                    continue
                batch.append(entry)
                if key is not None:
                    keys.add(key)
            held.extend(pending)
            self._pending = pending = held
            if not batch:
                return
            busy |= keys
            self._in_flight += len(batch)
            flight = asyncio.get_running_loop().create_task(
                self._fly(batch, keys), name="eventplatform.coalescer"
            )
            self._flights.add(flight)

    async def _fly(self, batch: list[_Pending], keys: set[str | bytes]) -> None:
        try:
            await self._publish(batch)
        finally:
            self._busy_keys -= keys
            self._in_flight -= len(batch)
            self._flights.discard(asyncio.current_task())
            if self._pending and not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._ship)

    async def _publish(self, batch: list[_Pending]) -> None:
        try:
            results = await self.producer.publish_batch([item for item, _ in batch])
        except asyncio.CancelledError:
            _fail(batch, PublishError("publishing was cancelled"))
            raise
        except Exception as exc:
            if len(batch) > 1 and blames_one_event(exc):
                # Find which event is bad by publishing each alone, so that one bad event
                # does not fail its neighbours' requests.
                for single in batch:
                    await self._publish([single])
                return
            error = translate_kafka_error(exc, batch[0][0].topic or "?")
            if error is not exc:
                error.__cause__ = exc
            if self._on_failed is not None:
                self._on_failed(error)
            _fail(batch, error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
        if self._on_published is not None:
            self._on_published(len(results))


def _fail(batch: list[_Pending], error: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
            # Its caller may have stopped waiting (a timeout): no "never retrieved" warning.
            future.exception()
