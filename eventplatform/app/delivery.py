"""One poll's records on their way through the loop: decoding, routing and ordering.

Each record becomes a :class:`Delivery`. Decoding a poll costs one registry round trip at
most (``AvroDeserializer.ensure`` with every schema id of the poll) and is synchronous after
that. A record whose headers, framing or schema id are wrong keeps its error and goes to the
dead-letter topic. The value itself is decoded only when its handler is about to run
(:attr:`Delivery.event`) and dropped once it ran (:meth:`Delivery.release`): a poll's typed
events, eleven garbage-collected objects each for a typical record, then never outlive their
handling, where holding them for the whole poll got them promoted to the oldest collector
generation and made full collections cost about as much as decoding (see the consume
benchmark in ``benchmarks/README.md``). A value that does not decode is dead-lettered by the
dispatcher, like a handler failure but with the converter's stage.

A record without any ``ce_*`` header (any stock Confluent producer's) is not wrong: its
metadata is derived from the record once its writer schema is known
(:meth:`~eventplatform.cloudevents.EventMetadata.from_record`), keyed as its handler chose
(:mod:`eventplatform.app.keys`). A handler keyed by a field has its event decoded then, since
the key must be known before the poll's keys are claimed. Such a record with a null value (a
tombstone, as Debezium writes after each delete) is skipped as unhandled, type ``tombstone``.

Ordering: events of one key run in order, and events of different keys may run concurrently
(:func:`plan_chains`). The key is the Kafka key within a partition, else the idempotency key;
deliveries that share an idempotency key are put in the same chain too, so that a duplicate
within one poll runs after its first copy and sees it as done, never next to it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from eventplatform.app.dlq import Stage
from eventplatform.app.routing import Route, Router
from eventplatform.cloudevents import EventMetadata, InvalidEventHeaders, has_cloudevents_headers
from eventplatform.errors import DeserializationError, UnknownSchemaId
from eventplatform.serde import AvroDeserializer, read_header

__all__ = ["Chain", "Decoder", "Delivery", "Outcome", "plan_chains"]

log = logging.getLogger("eventplatform.app")

#: The derived type of a null value without CloudEvents headers (a tombstone).
TOMBSTONE = "tombstone"

#: aiokafka's ConsumerRecord (untyped).
Record = Any
#: aiokafka's TopicPartition (a named tuple of topic and partition).
TP = Any


class Outcome(enum.Enum):
    """What became of a delivery."""

    PENDING = "pending"
    HANDLED = "handled"
    SKIPPED = "skipped"
    DUPLICATE = "duplicate"
    UNHANDLED = "unhandled"
    DEAD = "dead"
    DEFERRED = "deferred"


class Delivery:
    """One consumed record: its metadata, route and event, or why it cannot be handled.

    Attributes:
        record: the aiokafka ``ConsumerRecord``.
        tp: its ``TopicPartition``.
        metadata: CloudEvents metadata, read from the headers or derived from the record
            (None when the headers are invalid or the value is not Confluent-framed).
        event: the typed event, decoded on first access (None unless routed).
        route: the handler that takes it (None when unhandled or undecodable).
        error: why it cannot be handled (None when it can).
        stage: where ``error`` happened (Kafka Connect's stage names).
        outcome: what became of it.
        attempts: handler calls so far.
    """

    __slots__ = (
        "_decoder",
        "_event",
        "attempts",
        "error",
        "metadata",
        "outcome",
        "record",
        "route",
        "schema_id",
        "stage",
        "tp",
    )

    def __init__(self, record: Record, tp: TP) -> None:
        self.record = record
        self.tp = tp
        self.metadata: EventMetadata | None = None
        self.schema_id = -1
        self._event: Any = None
        self._decoder: Decoder | None = None
        self.route: Route[Any] | None = None
        self.error: BaseException | None = None
        self.stage = Stage.TASK_PUT
        self.outcome = Outcome.PENDING
        self.attempts = 0

    def __repr__(self) -> str:
        r = self.record
        return f"<Delivery {r.topic}[{r.partition}]@{r.offset} {self.outcome.value}>"

    def fail(self, error: BaseException, stage: Stage) -> None:
        """Mark the delivery undecodable."""
        self.error = error
        self.stage = stage

    @property
    def event(self) -> Any:
        """The typed event, decoded on first access; None when the delivery has no route.

        Raises:
            DeserializationError: the value does not decode as the route's event type.
        """
        if self._event is None and self.route is not None and self._decoder is not None:
            self._event = self._decoder.event_of(self)
        return self._event

    @event.setter
    def event(self, value: Any) -> None:
        self._event = value

    def release(self) -> None:
        """Drop the decoded event once handled (a later access decodes it again)."""
        self._event = None

    @property
    def idempotency_key(self) -> str:
        """The event's idempotency key (only for decoded deliveries)."""
        assert self.metadata is not None
        return self.metadata.idempotency_key


class Decoder:
    """Turns a poll's records into deliveries: metadata, schema id, route; events on demand.

    Args:
        router: the app's routes.
        deserializer: the app's deserializer (caches writer schemas by id).
    """

    def __init__(self, router: Router, deserializer: AvroDeserializer) -> None:
        self.router = router
        self.deserializer = deserializer
        # (topic, schema id) -> (route, writer type name); the writer schema of an id never
        # changes.
        self._routes: dict[tuple[str, int], tuple[Route[Any] | None, str]] = {}
        self._fallbacks: set[Route[Any]] = set()  # routes whose key fallback was logged

    async def decode(self, polled: Mapping[TP, Sequence[Record]]) -> list[list[Delivery]]:
        """The deliveries of a poll, per partition in offset order.

        Raises:
            RegistryUnavailable: the registry could not be asked for new schema ids
                (retriable: nothing was decided, redo the poll later).
        """
        batches: list[list[Delivery]] = []
        ids: set[int] = set()
        for tp, records in polled.items():
            topic, partition = tp.topic, tp.partition
            batch = []
            for record in records:
                delivery = Delivery(record, tp)
                offset = record.offset
                try:
                    delivery.metadata = EventMetadata.from_headers(
                        record.headers, topic=topic, partition=partition, offset=offset
                    )
                except InvalidEventHeaders as exc:
                    # Present but malformed CloudEvents headers are an error; none at all is
                    # a record of another producer, given metadata in _type. (Checked only
                    # on failure: our own records pay nothing for it.)
                    if has_cloudevents_headers(record.headers):
                        delivery.fail(exc, Stage.HEADER_CONVERTER)
                    elif record.value is None:
                        self._tombstone(delivery)
                if delivery.error is None and delivery.outcome is Outcome.PENDING:
                    try:
                        delivery.schema_id = read_header(
                            record.value, topic=topic, partition=partition, offset=offset
                        )
                    except DeserializationError as exc:
                        delivery.fail(exc, Stage.VALUE_CONVERTER)
                    else:
                        ids.add(delivery.schema_id)
                batch.append(delivery)
            batches.append(batch)
        await self.deserializer.ensure(ids)
        routes = self._routes
        pending = Outcome.PENDING
        for batch in batches:
            for delivery in batch:
                if delivery.error is None and delivery.outcome is pending:
                    # A cached (topic, schema id) is typed without a coroutine per record.
                    cached = routes.get((delivery.record.topic, delivery.schema_id))
                    if cached is None:
                        await self._type(delivery)
                    else:
                        self._typed(delivery, *cached)
        return batches

    def _tombstone(self, delivery: Delivery) -> None:
        # Another producer's null value: Debezium writes one after each delete, so that
        # compaction can drop the key. It is no event of any type: skipped as unhandled
        # (counted and logged once per topic), not dead-lettered.
        record = delivery.record
        delivery.metadata = EventMetadata.from_record(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp=record.timestamp,
            type=TOMBSTONE,
            source=self.router.source(record.topic),
            headers=record.headers,
        )
        delivery.outcome = Outcome.UNHANDLED

    async def _type(self, delivery: Delivery) -> None:
        record = delivery.record
        topic, schema_id = record.topic, delivery.schema_id
        cache_key = (topic, schema_id)
        try:
            route, type_name = self._routes[cache_key]
        except KeyError:
            if not self.deserializer.known(schema_id):
                # The registry has no such id (ensure() skips unknown ids silently).
                delivery.fail(
                    UnknownSchemaId(
                        f"schema id {schema_id} is not in the registry",
                        topic=topic,
                        partition=record.partition,
                        offset=record.offset,
                    ),
                    Stage.VALUE_CONVERTER,
                )
                return
            writer = await self.deserializer.writer_schema(schema_id)
            name = writer.full_name
            ce_type = delivery.metadata.type if delivery.metadata is not None else None
            route = self.router.resolve(topic, name, ce_type)
            type_name = writer.type_name
            if name is not None:  # a ce_type-routed decision depends on the record: no cache
                self._routes[cache_key] = (route, type_name)
        self._typed(delivery, route, type_name)

    def _typed(self, delivery: Delivery, route: Route[Any] | None, type_name: str) -> None:
        """Give ``delivery`` the route its writer schema chose (None: no handler takes it)."""
        if route is not None:
            delivery.route = route
            delivery._decoder = self
        if delivery.metadata is None:
            self._derive(delivery, route, type_name)
        if delivery.error is None and route is None:
            delivery.outcome = Outcome.UNHANDLED

    def _derive(self, delivery: Delivery, route: Route[Any] | None, type_name: str) -> None:
        """Metadata for a record without CloudEvents headers, keyed as its handler chose."""
        record = delivery.record
        topic = record.topic
        key: str | None = None
        if route is not None and route.idempotency_key.source != "event_id":
            choice = route.idempotency_key
            try:
                # A field key needs the event now; it is kept for the handler.
                event = delivery.event if choice.source == "field" else None
            except DeserializationError as exc:
                delivery.route = delivery._decoder = None
                delivery.fail(exc, Stage.VALUE_CONVERTER)
                return
            key = choice.read(headers=record.headers, key=record.key, event=event)
            if key is None and route not in self._fallbacks:
                self._fallbacks.add(route)
                log.warning(
                    "%s: %s has no %s; keyed by its derived id (once per record) instead; "
                    "logged once per handler",
                    route.name,
                    f"{topic}[{record.partition}]@{record.offset}",
                    choice,
                )
        delivery.metadata = EventMetadata.from_record(
            topic=topic,
            partition=record.partition,
            offset=record.offset,
            timestamp=record.timestamp,
            type=type_name,
            source=route.source if route is not None else self.router.source(topic),
            idempotency_key=key,
            headers=record.headers,
        )

    def event_of(self, delivery: Delivery) -> Any:
        """The typed event of a routed delivery (what :attr:`Delivery.event` returns).

        Raises:
            DeserializationError: the value does not decode as the route's event type.
        """
        route = delivery.route
        assert route is not None
        record = delivery.record
        return self.deserializer.decode(
            record.value,
            route.event_type,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )


class Chain:
    """Deliveries that must run one after another, in poll order.

    A chain added to a poll that is running (a poll grown by the next one read ahead) may have
    to wait for chains of the poll that share a key with it: :attr:`after`. A chain that
    ended with an event deferred is :attr:`held`; the chains after it are deferred whole.
    """

    __slots__ = ("_waiters", "after", "deliveries", "ended", "held", "parent", "tp")

    def __init__(self, tp: TP) -> None:
        self.deliveries: list[tuple[int, Delivery]] = []
        self.parent: Chain | None = None
        self.tp = tp
        self.after: tuple[Chain, ...] = ()
        self.ended = False
        self.held = False
        self._waiters: asyncio.Event | None = None

    def end(self, *, held: bool) -> None:
        """The chain's worker is done with it (``held``: an event of it was deferred)."""
        self.ended = True
        self.held = held
        if self._waiters is not None:
            self._waiters.set()

    async def wait(self) -> bool:
        """Wait until the chain has ended; True when it is held."""
        if not self.ended:
            if self._waiters is None:
                self._waiters = asyncio.Event()
            await self._waiters.wait()
        return self.held

    def ordering_keys(self) -> Iterator[Hashable]:
        """What orders the chain: the Kafka key (per partition) and idempotency key of each
        event (as :func:`plan_chains` joins them)."""
        for _, delivery in self.deliveries:
            key = delivery.record.key
            if key is not None:
                yield (delivery.tp, key)
            yield delivery.idempotency_key

    def root(self) -> Chain:
        """The chain this one was merged into (itself when never merged)."""
        chain = self
        while chain.parent is not None:
            chain = chain.parent
        if chain is not self:
            self.parent = chain  # path compression
        return chain


def plan_chains(deliveries: Iterable[Delivery]) -> list[Chain]:
    """Group runnable deliveries into chains of one key, in poll order.

    A delivery joins the chain of its Kafka key in its partition (or, without a Kafka key, of
    its idempotency key) and the chain of its idempotency key; when those are different chains
    they merge, keeping poll order. Each chain runs sequentially; different chains may run
    concurrently.
    """
    by_key: dict[tuple[TP, bytes], Chain] = {}
    by_idempotency: dict[str, Chain] = {}
    chains: list[Chain] = []
    for position, delivery in enumerate(deliveries):
        ik = delivery.idempotency_key
        kafka_key = delivery.record.key
        first = by_key.get((delivery.tp, kafka_key)) if kafka_key is not None else None
        second = by_idempotency.get(ik)
        a = first.root() if first is not None else None
        b = second.root() if second is not None else None
        if a is None and b is None:
            chain = Chain(delivery.tp)
            chains.append(chain)
        elif b is None or a is b:
            assert a is not None
            chain = a
        elif a is None:
            chain = b
        else:
            # Two chains meet: merge the later-started one into the earlier, in poll order.
            early, late = (a, b) if a.deliveries[0][0] < b.deliveries[0][0] else (b, a)
            early.deliveries = sorted(early.deliveries + late.deliveries, key=_position)
            late.deliveries = []
            late.parent = early
            chain = early
        chain.deliveries.append((position, delivery))
        if kafka_key is not None:
            by_key[(delivery.tp, kafka_key)] = chain
        by_idempotency[ik] = chain
    return [chain for chain in chains if chain.parent is None]


def _position(item: tuple[int, Delivery]) -> int:
    return item[0]
