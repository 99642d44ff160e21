"""Coalescing concurrent publishes into batches: many callers, one acknowledgement wait.

Two users: :meth:`EventProducer.publish <eventplatform.producer.EventProducer.publish>`
submits every call's event to its producer's coalescer, and a request-reply source such as the
webhook ingress, which publishes one event per request and may answer only once Kafka
acknowledged it (DESIGN.md, "Guarantees"). Publishing each event by itself would cost
aiokafka's per-message ``send()`` bookkeeping and one acknowledgement wait per call.
:class:`Coalescer` instead queues what concurrent callers submit and ships it through
:func:`publish_each`: one batch per partition, one wait for all acknowledgements, and each
caller gets its own :class:`~eventplatform.producer.PublishResult` or error.

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
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from eventplatform.errors import EventPlatformError, PublishError, ResourceStateError
from eventplatform.observability import events as observed
from eventplatform.producer._errors import KAFKA_FAILURES, translate

if TYPE_CHECKING:
    from eventplatform.producer.producer import EventProducer, Outgoing, PublishResult

__all__ = ["Coalescer", "publish_each"]

log = logging.getLogger("eventplatform.producer")

#: An event, its caller's future, and its timing and ``send`` span while instrumented.
_Pending = tuple["Outgoing", "asyncio.Future[PublishResult]", "observed.Sending | None"]


async def publish_each(
    producer: EventProducer,
    items: Sequence[Outgoing | EventPlatformError],
    *,
    stop: Callable[[int], bool] | None = None,
    traceparent: str | None = None,
) -> list[PublishResult | EventPlatformError]:
    """Publish ``items`` in one ``publish_batch`` pass; each item's result or its own error.

    The one way a batch isolates a bad event (the coalescer's and the source pump's): an
    event that cannot be encoded, whose schema or topic cannot be resolved, or that is too
    large fails alone and the others are published in the same pass -- nothing is published
    twice to find out which one was bad. An item that is an error already (the caller could
    not build it) fails the same way. When ``stop(index)`` is true for a failed item, the
    items after it are not sent and get its error (the source pump stops at a record whose
    position it must not commit past). A batch the broker refuses, or does not acknowledge
    within the delivery timeout, is the error of the events it carried, translated by
    :func:`~eventplatform.producer._errors.translate`. ``traceparent`` goes to the items
    that carry none of their own (a traced batch's ``send`` span).

    Raises:
        asyncio.CancelledError: the caller was cancelled (some events may be written).
    """
    try:
        return await producer._publish_outcomes(
            items, isolate=True, stop=stop, traceparent=traceparent
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # not started, or a failure that is no event's own
        if not isinstance(exc, (EventPlatformError, *KAFKA_FAILURES)):
            log.error("publishing a batch failed unexpectedly", exc_info=exc)
        error = translate(exc, kafka=producer.settings.kafka)
        if error is not exc:
            error.__cause__ = exc
        return [error] * len(items)


class Coalescer:
    """Gathers events submitted concurrently and publishes them together (module docstring).

    An async context manager; :meth:`aclose` publishes what was submitted before it returns.

    Up to ``max_in_flight`` batches are in flight at once, so that aiokafka already holds a
    partition's next batch when the one in flight is acknowledged (it sends one batch per
    partition at a time). A batch takes the waiting events in order, except those whose key
    is in a batch still in flight: they wait for it, so a key's events are never in two
    concurrent ``publish_batch`` calls and keep their order.

    Args:
        producer: a started producer (its recovery from refused sequence numbers and its
            delivery timeout apply).
        max_batch: events per ``publish_batch`` call at most.
        max_in_flight: ``publish_batch`` calls at once at most.
        on_published: called with the number of events each shipped batch made durable.
        on_failed: called with each distinct error of a shipped batch.

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
        # Started here, in the caller's context: its span is the event's creation context.
        sending = None
        if observed.SWITCHES.sending:
            topic = item.topic or type(item.event).__avro_topic__ or ""
            sending = observed.send_started(item, topic)
        self._pending.append((item, future, sending))
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
            The errors of :meth:`EventProducer.publish
            <eventplatform.producer.EventProducer.publish>`.
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
        started = time.perf_counter()
        try:
            outcomes = await publish_each(self.producer, [item for item, _, _ in batch])
        except BaseException as exc:  # cancelled, or a bug: no caller may wait forever
            _fail(batch, PublishError(f"publishing was interrupted: {type(exc).__name__}"))
            raise
        if observed.SWITCHES.sending:
            _observe(batch, outcomes, time.perf_counter() - started)
        published = 0
        failures: list[EventPlatformError] = []
        for (_, future, _), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, EventPlatformError):
                if not failures or failures[-1] is not outcome:
                    failures.append(outcome)
                if not future.done():
                    future.set_exception(outcome)
                    # Its caller may have stopped waiting (a timeout): no "never retrieved".
                    future.exception()
                continue
            published += 1
            if not future.done():
                future.set_result(outcome)
        if published and self._on_published is not None:
            self._on_published(published)
        if self._on_failed is not None:
            for failure in failures:
                self._on_failed(failure)


def _observe(
    batch: list[_Pending], outcomes: list[PublishResult | EventPlatformError], seconds: float
) -> None:
    """End the batch's calls' spans and timings; count the messages sent and time the batch
    (``seconds``) as the one send operation it was."""
    counts: dict[tuple[str, str], int] = {}
    for (_, _, sending), outcome in zip(batch, outcomes, strict=True):
        if sending is None:  # submitted before instrumentation was switched on
            continue
        observed.send_finished(sending, outcome)
        labels = (sending.topic, type(outcome).__name__ if isinstance(outcome, Exception) else "")
        counts[labels] = counts.get(labels, 0) + 1
    observed.sent(counts, seconds)


def _fail(batch: list[_Pending], error: BaseException) -> None:
    for _, future, sending in batch:
        if sending is not None:
            observed.send_finished(sending, error)
        if not future.done():
            future.set_exception(error)
            # Its caller may have stopped waiting (a timeout): no "never retrieved" warning.
            future.exception()
