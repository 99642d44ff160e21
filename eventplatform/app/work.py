"""``@app.work``: handlers on a Kafka share group (KIP-932), any number of events in flight.

::

    @app.work(OrderPlaced, group="mailer", concurrency=32)
    async def mail(event: OrderPlaced, ctx: Context) -> None:
        ...

The handler has the signature and :class:`~eventplatform.app.Context` of ``@app.handle``
(DESIGN.md decision 11: moving a handler from one to the other is a change of decorator), but
the records are not ordered: the members of the share group take records of the same
partitions, and each process runs up to ``concurrency`` of them at once. Per delivery
(:class:`WorkRunner`):

- the event's idempotency key is claimed in its own store batch (for SQLite and PostgreSQL one
  database transaction): a key done already is accepted without running the handler; a key
  another worker holds right now is claimed again after a backoff, the record kept (its lock
  renewed), so that waiting never costs a delivery;
- the handler runs inside the batch's unit (``ctx.transaction``, the inbox pattern), under its
  timeout; the record's lock is renewed while it runs (KIP-1222);
- success commits the batch (effects and key together), and only then is the record accepted;
- a retriable failure rolls the unit back and releases the record with the retry policy's
  backoff for its delivery count as delay (:meth:`~eventplatform.queue.QueueItem.release`);
- a non-retriable failure, or a failure of the last delivery the group allows
  (``share.delivery.count.limit``, which the runner sets on the group to ``delivery_limit``),
  dead-letters the record (``__connect.errors.*`` headers, :mod:`eventplatform.app.dlq`) and
  accepts it;
- records that cannot become an event (garbage bytes, unknown schema ids, values that do not
  decode) are dead-lettered and accepted by the queue underneath, never redelivered forever.

At start each runner checks the event class against the registry's latest schema of the
topic's subject: a class that cannot read it fails the start, naming subject and class.
Stopping (SIGTERM under ``eventplatform serve``) fetches nothing more, lets the handlers in
flight finish, and waits for their acknowledgements before the member leaves the group.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from eventplatform.app.context import Context, Publisher
from eventplatform.app.deadline import Deadlines
from eventplatform.app.retry import is_retriable
from eventplatform.app.routing import Route
from eventplatform.app.signals import RetryLater, SkipEvent
from eventplatform.app.stats import AppStats
from eventplatform.errors import (
    ConfigurationError,
    HandlerTimeout,
    IdempotencyStoreError,
    InvalidSchema,
    QueueError,
    RegistryUnavailable,
    SubjectNotFound,
)
from eventplatform.idempotency import IdempotencyStore
from eventplatform.queue import EventQueue, QueueItem
from eventplatform.registry.base import CompatibilityLevel, SchemaRegistry
from eventplatform.registry.compatibility import check_compatibility
from eventplatform.registry.parsing import parse_schema
from eventplatform.serde import SubjectNameStrategy
from eventplatform.settings import Settings

__all__ = [
    "MAX_DELIVERY_LIMIT",
    "MIN_DELIVERY_LIMIT",
    "WorkRunner",
    "WorkSpec",
    "WorkSpecs",
    "call_handler",
    "run_together",
]

log = logging.getLogger("eventplatform.app")

#: The broker's bounds of ``share.delivery.count.limit`` (``group.share.{min,max}.delivery.
#: count.limit``, KIP-932 / KIP-1240 defaults).
MIN_DELIVERY_LIMIT = 2
MAX_DELIVERY_LIMIT = 10


@dataclass(frozen=True, slots=True)
class WorkSpec:
    """One ``@app.work`` registration: a route on a share group.

    Attributes:
        route: the handler, its event class, topic, timeout, retry policy and dead-letter topic.
        group: the share group.
        concurrency: handlers in flight at once per process.
        delivery_limit: deliveries of a record before it is dead-lettered (set on the group
            as ``share.delivery.count.limit``).
        group_configs: further dynamic configs of the group (e.g.
            ``share.record.lock.duration.ms``).
    """

    route: Route[Any]
    group: str
    concurrency: int
    delivery_limit: int
    group_configs: Mapping[str, str] = field(default_factory=dict)

    def configs(self) -> dict[str, str]:
        """The group configs the runner sets when it joins."""
        # Below the broker's minimum the runner still dead-letters at ``delivery_limit``; the
        # group keeps the minimum, which it never reaches then.
        limit = max(MIN_DELIVERY_LIMIT, self.delivery_limit)
        return {
            "share.auto.offset.reset": "earliest",
            "share.delivery.count.limit": str(limit),
            **self.group_configs,
        }


class WorkSpecs:
    """The app's ``@app.work`` registrations, one per share group."""

    def __init__(self) -> None:
        self._specs: dict[str, WorkSpec] = {}

    def __bool__(self) -> bool:
        return bool(self._specs)

    def add(self, spec: WorkSpec) -> None:
        """Register ``spec``.

        Raises:
            ConfigurationError: the group has a handler already (one event class per share
                group: its members must all be able to take every record), the concurrency
                is below 1, or the delivery limit outside 1–10.
        """
        if spec.concurrency < 1:
            raise ConfigurationError(
                f"work group {spec.group!r}: concurrency must be at least 1, got {spec.concurrency}"
            )
        if not 1 <= spec.delivery_limit <= MAX_DELIVERY_LIMIT:
            raise ConfigurationError(
                f"work group {spec.group!r}: delivery_limit must be 1–{MAX_DELIVERY_LIMIT} "
                f"(the broker's share.delivery.count.limit range), got {spec.delivery_limit}"
            )
        if not spec.group:
            raise ConfigurationError("@app.work needs a share group name (group=…)")
        earlier = self._specs.get(spec.group)
        if earlier is not None:
            raise ConfigurationError(
                f"share group {spec.group!r} already runs {earlier.route.name} for "
                f"{earlier.route.event_type.__avro_name__}; a share group takes one event "
                "class (give the other handler a group of its own)"
            )
        self._specs[spec.group] = spec

    @property
    def specs(self) -> list[WorkSpec]:
        """The registrations, in order."""
        return list(self._specs.values())

    @property
    def topics(self) -> list[str]:
        """The topics the share groups read."""
        return list(dict.fromkeys(spec.route.topic for spec in self._specs.values()))


async def run_together(jobs: list[Coroutine[Any, Any, None]], stop: Callable[[], None]) -> None:
    """Run ``jobs`` until all return; when one fails, ``stop`` the others and re-raise.

    The others are asked to stop (not cancelled), so that they finish what is in flight.

    Raises:
        The first failure of a job.
    """
    tasks = [asyncio.ensure_future(job) for job in jobs]
    if not tasks:
        return
    failure: BaseException | None = None
    pending = set(tasks)
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if failure is None and not task.cancelled() and task.exception() is not None:
                    failure = task.exception()
                    stop()
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    if failure is not None:
        raise failure


async def call_handler(
    route: Route[Any], event: Any, ctx: Context, deadlines: Deadlines | None = None
) -> None:
    """Call ``route``'s handler under its timeout (as the stream dispatcher does).

    Args:
        deadlines: the calling worker's handler timer (one lazily re-armed timer for its
            successive calls); None times this call alone with ``asyncio.timeout``.

    Raises:
        HandlerTimeout: it ran past the route's timeout and was cancelled.
        RuntimeError: it raised a ``CancelledError`` of something it awaited.
        Whatever the handler raised.
    """
    try:
        if deadlines is not None:
            await deadlines.call(route.name, route.timeout, route.handler(event, ctx))
            return
        deadline = asyncio.timeout(route.timeout)
        try:
            async with deadline:
                await route.handler(event, ctx)
        except TimeoutError as exc:
            if not deadline.expired():
                raise  # the handler's own timeout, not ours
            raise HandlerTimeout(
                f"{route.name} did not finish within {route.timeout:g}s and was cancelled",
                timeout=route.timeout,
            ) from exc
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise  # the runner is being cancelled
        raise RuntimeError(f"{route.name} raised CancelledError: {exc!r}") from exc


class WorkRunner:
    """Runs one ``@app.work`` handler on its share group, inside the app's process.

    Args:
        spec: the registration.
        app_name: the app's name (``connector.name`` of dead letters).
        instance_id: this instance (``task.id`` of dead letters).
        owner: the idempotency owner id of this process.
        settings: the app's settings.
        bootstrap_servers: the Kafka cluster.
        registry: the app's started registry.
        store: the app's started idempotency store.
        inbox: run the handler inside the store's transaction (``ctx.transaction``).
        lease: seconds a non-transactional claim keeps other workers away.
        publisher: where ``ctx.publish`` sends (the app's producer).
        stats: the app's counters.
        stopping: set when the app stops.
    """

    def __init__(
        self,
        spec: WorkSpec,
        *,
        app_name: str,
        instance_id: str,
        owner: str,
        settings: Settings,
        bootstrap_servers: str,
        registry: SchemaRegistry,
        store: IdempotencyStore,
        inbox: bool,
        lease: float,
        publisher: Publisher,
        stats: AppStats,
        stopping: asyncio.Event,
    ) -> None:
        self.spec = spec
        self.route = spec.route
        self._registry = registry
        self._settings = settings
        self._store = store
        self._inbox = inbox
        self._owner = owner
        # A non-transactional claim is only a lease: it must outlast the handler's timeout.
        self._lease = max(lease, spec.route.timeout + 5.0)
        self._publisher = publisher
        self._stats = stats
        self._stopping = stopping
        # Handlers running now, and every delivery held (waiting or running) since when.
        self._in_flight: dict[QueueItem[Any], float] = {}
        self._held: dict[QueueItem[Any], float] = {}
        self._waiting: deque[QueueItem[Any]] = deque()
        # What the fetch loop waits on while twice ``concurrency`` deliveries are held: the
        # worker that brings them below it resolves it (the loop does not wake after every
        # delivery to find it still full), and so does the app stopping.
        self._room: asyncio.Future[None] | None = None
        # Workers waiting for a delivery; whether a wake-up is scheduled; stop when idle.
        self._idle: deque[asyncio.Future[None]] = deque()
        self._kick_due = False
        self._draining = False
        self.queue: EventQueue[Any] = EventQueue(
            spec.route.event_type,
            topic=spec.route.topic,
            group=spec.group,
            bootstrap_servers=bootstrap_servers,
            registry=registry,
            settings=settings,
            dlq_topic=spec.route.dlq_topic,
            group_configs=spec.configs(),
            prefetch=spec.concurrency,
            idempotency_key=spec.route.idempotency_key,
            connector=app_name,
            task_id=instance_id,
        )
        self._no_unit = (
            "the idempotency store cannot hold the handler's writes (the memory store, or an "
            "app built with inbox=False); use a SQLite or PostgreSQL store"
        )

    def __repr__(self) -> str:
        return (
            f"<WorkRunner {self.route.name} group={self.spec.group!r} "
            f"in_flight={len(self._in_flight)}/{self.spec.concurrency}>"
        )

    @property
    def in_flight(self) -> int:
        """Deliveries whose handler runs now."""
        return len(self._in_flight)

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the event class against the registry, then join the share group.

        Raises:
            ConfigurationError: the class cannot read the topic's latest registered schema
                (names subject and class), or the broker refused a group config.
            SharingUnsupported, QueueUnavailable, QueueError: as
                :meth:`~eventplatform.queue.ShareConsumer.start`.
            RegistryError: the registry could not be asked.
        """
        await self.check_schema()
        await self.queue.start()
        try:
            await self.queue.connect()
        except BaseException:
            await self.queue.close()
            raise

    async def close(self) -> None:
        """Leave the group (what is held and unsettled goes back to the queue). Idempotent."""
        await self.queue.close()

    async def check_schema(self) -> None:
        """Fail when the event class cannot read what the topic's subject holds (item 7).

        Only the topic-name strategy gives a topic one subject; with the record-name
        strategies a topic holds several subjects and other types are skipped, not wrong.

        Raises:
            ConfigurationError: the class's schema cannot read the latest registered one.
            RegistryError: the registry could not be asked.
        """
        strategy = SubjectNameStrategy(self._settings.registry.subject_strategy)
        if strategy is not SubjectNameStrategy.TOPIC:
            return
        route = self.route
        subject = f"{route.topic}-value"
        try:
            latest = await self._registry.get_version(subject, "latest")
        except SubjectNotFound:
            return  # nothing published yet
        if latest.references:
            return  # the writer needs other subjects to parse; the decoder checks per record
        cls = route.event_type
        try:
            reader = parse_schema(cls.avro_schema_json())
            writer = parse_schema(latest.schema)
            verdict = check_compatibility(
                reader, [(latest.version, writer)], CompatibilityLevel.BACKWARD
            )
        except InvalidSchema as exc:
            raise ConfigurationError(
                f"@app.work({cls.__name__}) on topic {route.topic!r}: cannot compare the class "
                f"with subject {subject!r} version {latest.version}: {exc}"
            ) from exc
        if not verdict.is_compatible:
            raise ConfigurationError(
                f"@app.work({cls.__module__}.{cls.__qualname__}) cannot read topic "
                f"{route.topic!r}: subject {subject!r} version {latest.version} (schema id "
                f"{latest.id}) holds records this class cannot decode: "
                + "; ".join(verdict.messages)
            )

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Fetch and work deliveries until the app stops; then finish what is in flight.

        ``concurrency`` long-lived worker tasks take deliveries from one deque (rather than
        a task per delivery): each has its own lazily re-armed handler timer
        (:class:`~eventplatform.app.deadline.Deadlines`, as the stream dispatcher's workers
        do), so a delivery costs neither a task nor a timer.

        Raises:
            SharingUnsupported, QueueError: the share group refused this member for good.
        """
        queue = self.queue
        retry = self.route.retry
        loop = asyncio.get_running_loop()
        renewer = asyncio.create_task(
            self._keep_locked(), name=f"eventplatform.work.renew[{self.spec.group}]"
        )
        failures = 0
        concurrency = self.spec.concurrency
        waiting = self._waiting
        self._draining = False
        workers = [
            loop.create_task(self._worker(), name=f"eventplatform.work[{self.spec.group}]")
            for _ in range(concurrency)
        ]
        stopped = loop.create_task(self._stopping.wait())
        stopped.add_done_callback(lambda _: self._make_room())
        try:
            while not self._stopping.is_set():
                if len(waiting) + len(self._in_flight) >= 2 * concurrency:
                    # Every worker is busy and a whole batch waits for them already: fetch
                    # again only once handlers finish.
                    self._room = loop.create_future()
                    await self._room
                    continue
                try:
                    # The next batch is fetched while the handlers run (prefetch: up to twice
                    # ``concurrency`` records are held), so a fetch's round trip overlaps
                    # their work. Returns within max_wait, so a stop is noticed that soon.
                    # When even a whole batch more leaves room, the fetch after this one
                    # is sent before this one's records are decoded (fetch_ahead).
                    ahead = len(waiting) + len(self._in_flight) + concurrency < 2 * concurrency
                    items = await queue.get_batch(
                        concurrency, timeout=queue.max_wait, fetch_ahead=ahead
                    )
                except RegistryUnavailable as exc:
                    # The records were released by the queue; ask again after a backoff.
                    failures += 1
                    self._stats.connection_errors += 1
                    log.warning("work group %s: %s; retrying", self.spec.group, exc)
                    await self._pause(retry.backoff(failures))
                    continue
                failures = 0
                if items:
                    now = loop.time()
                    held = self._held
                    for item in items:
                        held[item] = now
                    waiting.extend(items)
                    self._kick()
        finally:
            # Fetched and not started: back to the queue at once, for the other members.
            await queue.drop_fetch_ahead()
            while waiting:
                item = waiting.popleft()
                self._held.pop(item, None)
                await item.release()
            self._draining = True
            self._wake_all()
            if self._in_flight:
                log.info(
                    "work group %s: finishing %d event(s) in flight",
                    self.spec.group,
                    len(self._in_flight),
                )
            await asyncio.gather(*workers, return_exceptions=True)
            renewer.cancel()
            stopped.cancel()
            await asyncio.gather(renewer, stopped, return_exceptions=True)
            try:
                await queue.join()
            except QueueError as exc:
                log.warning("work group %s: last acknowledgements failed: %s", self.spec.group, exc)

    async def _worker(self) -> None:
        """One of the ``concurrency`` workers: deliveries from the deque, one at a time."""
        loop = asyncio.get_running_loop()
        waiting = self._waiting
        in_flight = self._in_flight
        held = self._held
        idle = self._idle
        room_for = 2 * self.spec.concurrency
        deadlines = Deadlines()
        try:
            while True:
                if not waiting:
                    if self._draining:
                        return
                    parked = loop.create_future()
                    idle.append(parked)
                    try:
                        await parked
                    finally:
                        if not parked.done():
                            parked.cancel()
                    continue
                item = waiting.popleft()
                if waiting:
                    self._kick()  # another idle worker takes the next one, if this one waits
                in_flight[item] = loop.time()
                try:
                    await self._deliver(item, deadlines)
                except Exception:
                    log.exception("work group %s: a worker failed on %r", self.spec.group, item)
                finally:
                    del in_flight[item]
                    held.pop(item, None)
                    room = self._room
                    if room is not None and len(waiting) + len(in_flight) < room_for:
                        self._make_room()
        finally:
            deadlines.close()

    def _kick(self) -> None:
        """Wake an idle worker once the running one yields (one per loop turn, so that a
        handler that never waits drains the deque alone rather than waking every worker)."""
        if not self._kick_due:
            self._kick_due = True
            asyncio.get_running_loop().call_soon(self._wake_one)

    def _wake_one(self) -> None:
        self._kick_due = False
        if not self._waiting:
            return
        idle = self._idle
        while idle:
            parked = idle.popleft()
            if not parked.done():
                parked.set_result(None)
                return

    def _wake_all(self) -> None:
        idle = self._idle
        while idle:
            parked = idle.popleft()
            if not parked.done():
                parked.set_result(None)

    def _make_room(self) -> None:
        room, self._room = self._room, None
        if room is not None and not room.done():
            room.set_result(None)

    async def _pause(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return True
        return False

    async def _keep_locked(self) -> None:
        """Renew the locks of deliveries held for long, waiting or running (KIP-1222)."""
        consumer = self.queue.consumer
        loop = asyncio.get_running_loop()
        while True:
            # A third of the lock: a renewal that arrives late loses the record.
            step = max(0.5, consumer.lock_timeout / 3)
            await asyncio.sleep(step)
            if not consumer.supports_renew:
                continue
            now = loop.time()
            due = [
                item
                for item, since in self._held.items()
                if now - since >= step and not item.settled
            ]
            if not due:
                continue
            try:
                await consumer.renew([item.record for item in due])
            except QueueError as exc:
                log.warning("work group %s: renewing locks failed: %s", self.spec.group, exc)

    # -- one delivery -----------------------------------------------------------------------

    async def _deliver(self, item: QueueItem[Any], deadlines: Deadlines) -> None:
        record = item.record
        self._stats.received += 1
        ctx = Context(
            metadata=item.metadata,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            headers=record.headers,  # type: ignore[arg-type]
            group_id=self.spec.group,
            publisher=self._publisher,
            no_unit_reason=self._no_unit,
            attempt=item.delivery_count,
        )
        try:
            outcome = await self._run_once(item, ctx, deadlines)
        except Exception as exc:
            await self._fail(item, exc)
            return
        if outcome is None:  # stopping while the key was busy or the store unreachable
            await item.release()
            self._stats.deferred += 1
            return
        if outcome == "duplicate":
            self._stats.skipped_duplicates += 1
        elif outcome == "skipped":
            self._stats.skipped += 1
        else:
            self._stats.handled += 1
        await item.task_done()

    async def _run_once(
        self, item: QueueItem[Any], ctx: Context, deadlines: Deadlines
    ) -> str | None:
        """Claim the key and run the handler in the key's batch; what happened, or None.

        Waiting (a key another worker holds, a store that fails retriably) keeps the record,
        its lock renewed, and tries again after a backoff: waiting costs no delivery, so it
        never brings the record closer to the delivery limit.
        """
        waits = 0
        while True:
            try:
                outcome = await self._claim_and_call(item, ctx, deadlines)
            except IdempotencyStoreError as exc:
                if not exc.retriable:
                    raise
                # The store failed or another member's transaction holds the key's row past
                # the lock timeout (a worker whose lock expired still finishing it).
                self._stats.store_errors += 1
                log.warning("work group %s: store failed on %r: %s", self.spec.group, item, exc)
                outcome = "busy"
            if outcome != "busy":
                return outcome
            waits += 1
            if not await self._pause(self.route.retry.backoff(waits)):
                return None

    async def _claim_and_call(
        self, item: QueueItem[Any], ctx: Context, deadlines: Deadlines
    ) -> str:
        key = item.idempotency_key
        async with self._store.batch(
            self.spec.group, owner=self._owner, lease=self._lease, transactional=self._inbox
        ) as batch:
            claim = await batch.claim([key])
            if key in claim.done:
                return "duplicate"
            if key in claim.busy:
                return "busy"  # its duplicate is in flight on another worker
            try:
                if batch.transactional:
                    async with batch.unit(key) as unit:
                        ctx._begin_attempt(item.delivery_count, unit, self._publisher)
                        await call_handler(self.route, item.event, ctx, deadlines)
                else:
                    ctx._begin_attempt(item.delivery_count, None, self._publisher)
                    await call_handler(self.route, item.event, ctx, deadlines)
            except SkipEvent as signal:
                log.info("%s skipped %r: %s", self.route.name, item, signal.reason or "-")
                batch.complete(key)
                return "skipped"
            if not batch.transactional:
                batch.complete(key)
            return "handled"

    async def _fail(self, item: QueueItem[Any], exc: Exception) -> None:
        route = self.route
        count = item.delivery_count
        last = count >= self.spec.delivery_limit
        if is_retriable(exc) and not last:
            if isinstance(exc, RetryLater) and exc.after is not None:
                delay = exc.after
            else:
                delay = route.retry.backoff(count)
            self._stats.retries += 1
            log.warning(
                "%s failed on %r (delivery %d/%d), released for %.2fs: %s: %s",
                route.name,
                item,
                count,
                self.spec.delivery_limit,
                delay,
                type(exc).__name__,
                exc,
            )
            if self._stopping.is_set():
                delay = 0.0  # leaving: another member may take it at once
            await item.release(delay=delay)
            return
        log.error(
            "%s failed on %r (delivery %d/%d), dead-lettering it: %s: %s",
            route.name,
            item,
            count,
            self.spec.delivery_limit,
            type(exc).__name__,
            exc,
        )
        try:
            await item.reject(exc)
        except QueueError as err:
            log.warning("work group %s: %s", self.spec.group, err)
            return
        self._stats.dead_lettered += 1
