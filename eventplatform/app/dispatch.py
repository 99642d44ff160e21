"""Running a poll's deliveries through their handlers: order, concurrency, retries, dead letters.

Deliveries are grouped into chains of one key (:func:`~eventplatform.app.delivery.plan_chains`);
each partition's chains are worked by up to ``max_concurrency`` workers, and a chain runs in
order: when one of its events is deferred, the rest of the chain is deferred behind it.

An event is decoded just before its first attempt and released after its last (see
:mod:`eventplatform.app.delivery`); a value that does not decode is dead-lettered at once, with
the value converter's stage, and is not retried.

Every handler call runs under its route's timeout (:class:`~eventplatform.app.deadline.Deadlines`:
``asyncio.timeout``'s semantics on one timer per worker; a handler that swallows
``CancelledError`` defeats it) and, in an inbox app, inside its store unit (a
savepoint): a failure rolls the unit back and the handler is retried, or dead-lettered (see
:mod:`eventplatform.app.retry`). A handler's ``SkipEvent`` rolls its unit back and records its
key as done.

In a poll of **key units** (:meth:`PollState.open_units`: an inbox on PostgreSQL with
``max_concurrency > 1``) there is no store batch: each attempt is a transaction of its own
(``BEGIN``, the claim of its key, the handler's writes, ``COMMIT``) on the connection its
worker holds, so up to ``max_concurrency`` handlers per partition, and at most
``store.concurrent_units`` in all, wait on their I/O at once instead of taking turns. A key
found done is a duplicate; a key found busy is deferred with the rest of its chain. Before
each event a worker tells its session which key it runs next (the next of its chain, else
the head of the chain it takes next), so that the event's ``COMMIT`` claims it in the same
round trip (:meth:`~eventplatform.idempotency.base.UnitSession.expect`). Once every chain of
such a poll has been taken, the next poll read ahead may join it (:meth:`Dispatcher.extend`):
its chains wait for the running chains that share a key with them, and are deferred whole
behind a chain that ended deferred.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Iterable
from typing import Any

from eventplatform.app.context import Context, ProducerPublisher, Publisher
from eventplatform.app.deadline import Deadlines
from eventplatform.app.delivery import Chain, Delivery, Outcome, plan_chains
from eventplatform.app.dlq import DeadLetter, DeadLetterQueue, Stage
from eventplatform.app.poll import PollState
from eventplatform.app.routing import Route, Router
from eventplatform.app.signals import SkipEvent
from eventplatform.app.stats import AppStats
from eventplatform.app.transaction import TransactionBuffer
from eventplatform.errors import (
    DeserializationError,
    IdempotencyStoreUnavailable,
    ProducerFenced,
)
from eventplatform.idempotency import IdempotencyStore, UnitSession
from eventplatform.observability.events import bind_event
from eventplatform.producer import EventProducer, Outgoing, PublishResult
from eventplatform.serde import AvroSerializer

__all__ = ["Dispatcher", "PollState"]  # PollState: re-exported from app.poll

log = logging.getLogger("eventplatform.app")

TP = Any  # aiokafka TopicPartition
_DECODER_CLASS = "eventplatform.serde.AvroDeserializer"
_HEADERS_CLASS = "eventplatform.cloudevents.EventMetadata"


def _unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The exception a task group failed with, preferring a real error over cancellations."""
    exc: BaseException
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _unwrap(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]


class PollRun:
    """A poll being run: its chains per partition, its jobs, and what :meth:`Dispatcher.extend`
    needs to add chains to it while it runs."""

    def __init__(self, poll: PollState, on_idle: Callable[[], object] | None) -> None:
        self.poll = poll
        self.queues: dict[TP, deque[Chain]] = {}
        self.workers: dict[TP, int] = {}  # live workers per partition
        self.taken: set[Chain] = set()  # chains taken by a worker and not ended
        self.held: set[Hashable] = set()  # keys of the chains that ended with an event deferred
        self.group: asyncio.TaskGroup | None = None
        self.live = 0  # jobs not finished: while any is, the task group takes more
        self.failed = False
        self.hook = on_idle
        self.on_idle = on_idle  # cleared once called; extend() arms it again

    def add(self, chains: Iterable[Chain]) -> dict[TP, int]:
        """Queue ``chains``; how many were added per partition."""
        added: dict[TP, int] = {}
        for chain in chains:
            self.queues.setdefault(chain.tp, deque()).append(chain)
            added[chain.tp] = added.get(chain.tp, 0) + 1
        return added

    def take(self, queue: deque[Chain]) -> Chain | None:
        """The next chain of ``queue`` to run: the first that waits for no running chain,
        else the first (its worker waits)."""
        if not queue:
            return None
        chain = queue[0]
        if chain.after and not _ready(chain):
            for candidate in queue:
                if not candidate.after or _ready(candidate):
                    chain = candidate
                    break
        if chain is queue[0]:
            queue.popleft()
        else:
            queue.remove(chain)
        self.taken.add(chain)
        return chain

    def end(self, chain: Chain, *, held: bool) -> None:
        self.taken.discard(chain)
        if held:
            self.held.update(chain.ordering_keys())
        chain.end(held=held)

    def spawn(self, job: Coroutine[Any, Any, None], tp: TP | None) -> None:
        """Start ``job`` in the poll's task group (a worker of partition ``tp``, or None); it
        calls :meth:`ended` when it ends."""
        assert self.group is not None
        self.group.create_task(job)
        self.live += 1
        if tp is not None:
            self.workers[tp] = self.workers.get(tp, 0) + 1

    def retire(self, tp: TP) -> None:
        """A worker of ``tp`` found no chain left: it takes none any more (its session may
        still be closing); the first to do so calls ``on_idle``."""
        if tp in self.workers:  # a worker of the task group (not a poll's lone job)
            self.workers[tp] -= 1
        idle, self.on_idle = self.on_idle, None
        if idle is not None:
            idle()

    def ended(self, *, failed: bool) -> None:
        """A job ends (called before its task ends: a job added later finds the group open)."""
        self.live -= 1
        self.failed = self.failed or failed

    async def job(self, call: Coroutine[Any, Any, None]) -> None:
        """``call`` as a job of the poll (for the jobs that are not workers)."""
        failed = True
        try:
            await call
            failed = False
        finally:
            self.ended(failed=failed)


def _ready(chain: Chain, current: Chain | None = None) -> bool:
    """Whether ``chain`` may start (once ``current`` ends): no other chain it waits for runs."""
    return all(before.ended or before is current for before in chain.after)


def where(record: Any) -> str:
    """``topic[partition]@offset`` of a record, for logs."""
    return f"{record.topic}[{record.partition}]@{record.offset}"


class _NoPublisher:
    """Stands in until an attempt sets the real publisher."""

    async def publish(self, item: Outgoing) -> PublishResult | None:
        raise AssertionError("no publisher set for this attempt")  # pragma: no cover


class Dispatcher:
    """Runs a poll's deliveries through their handlers, for the consumption loop.

    Args:
        group_id: the consumer group (derived event ids, dead-letter headers).
        router: the app's routes (dead-letter topics per topic).
        plain: the idempotent producer (non-transactional publishes, dead letters).
        transactional: the transactional producer (transactional handlers).
        serializer: encodes the publishes of transactional handlers.
        dlq: builds and writes dead letters.
        max_concurrency: chains run at once per partition.
        stats: counters (retries).
        pause: sleeps a backoff; False when the app is stopping.
        store: the idempotency store, for polls of key units.
        owner: this instance's owner id in the store.
    """

    def __init__(
        self,
        *,
        group_id: str,
        router: Router,
        plain: EventProducer | None,
        transactional: EventProducer | None,
        serializer: AvroSerializer,
        dlq: DeadLetterQueue,
        max_concurrency: int,
        stats: AppStats,
        pause: Callable[[float], Awaitable[bool]],
        store: IdempotencyStore | None = None,
        owner: str = "",
    ) -> None:
        self._group = group_id
        self._store = store
        self._owner = owner
        # Workers of a poll of key units each hold a connection: never more than the pool has.
        self._unit_slots = asyncio.Semaphore(store.concurrent_units if store is not None else 1)
        self._running: PollRun | None = None  # the poll being run, for extend()
        self._router = router
        self._plain = plain
        self._plain_publisher: Publisher = (
            _NoPublisher() if plain is None else ProducerPublisher(plain)
        )
        self._txn_producer = transactional
        self._serializer = serializer
        self._dlq = dlq
        self._max_concurrency = max_concurrency
        self.stats = stats
        self.pause = pause
        self._no_unit = (
            "the idempotency store cannot hold the handler's writes (the memory store, or an "
            "app built with inbox=False); use a SQLite or PostgreSQL store"
        )
        self._no_unit_txn = (
            "a transactional=True handler's effects commit in the Kafka transaction; it cannot "
            "also write through the store's transaction (two commits cannot be atomic)"
        )

    async def run(
        self,
        poll: PollState,
        runnable: list[Delivery],
        letters: list[Delivery],
        *,
        on_idle: Callable[[], object] | None = None,
    ) -> None:
        """Run the poll's deliveries: chains per partition, dead letters alongside.

        ``on_idle`` is called when the first of several workers finds no chain left (the
        poll's last wave has begun), and again after each :meth:`extend`; the loop reads the
        next poll ahead then.

        Raises:
            IdempotencyStoreUnavailable: the store failed under a handler; redo the poll.
            ProducerFenced: the transactional producer was fenced.
            KafkaError: records could not be sent into the poll's transaction.
        """
        run = PollRun(poll, on_idle)
        run.add(plan_chains(runnable))
        # Coroutines are made only when scheduled, so a failure leaves none un-awaited.
        jobs: list[tuple[Callable[[], Coroutine[Any, Any, None]], TP | None]] = []
        for tp, queue in run.queues.items():
            workers = min(self._max_concurrency, len(queue))
            jobs.extend([(functools.partial(self._worker, run, tp), tp)] * workers)
        if letters:
            jobs.append((functools.partial(self._dead_letters_job, run, letters), None))
        if not jobs:
            return
        if len(jobs) == 1:
            await jobs[0][0]()
            return
        self._running = run
        try:
            async with asyncio.TaskGroup() as group:
                run.group = group
                for job, tp in jobs:
                    run.spawn(job(), tp)
        except BaseExceptionGroup as failed:
            raise _unwrap(failed) from None
        finally:
            self._running = None

    def extend(self, runnable: list[Delivery], letters: list[Delivery]) -> bool:
        """Add the deliveries of the next poll to the poll of key units running now.

        Only once every chain of the running poll has been taken (its last wave runs): a chain
        added waits for the chains still running that share a key with it, and one sharing a
        key with a chain that ended deferred is deferred whole (its partition is read again
        from there). False, and nothing changed, when the poll cannot take them: it has ended
        or is failing, it is not a poll of key units, or chains of it wait to be taken.
        """
        run = self._running
        if (
            run is None
            or run.group is None
            or run.live == 0
            or run.failed
            or not run.poll.units
            or any(run.queues.values())
        ):
            return False
        owners: dict[Hashable, set[Chain]] = {}
        for chain in run.taken:
            for key in chain.ordering_keys():
                owners.setdefault(key, set()).add(chain)
        queued: list[Chain] = []
        for chain in plan_chains(runnable):
            keys = set(chain.ordering_keys())
            if not run.held.isdisjoint(keys):
                for _, d in chain.deliveries:
                    d.outcome = Outcome.DEFERRED
                run.held.update(keys)
                continue
            chain.after = tuple({c for key in keys for c in owners.get(key, ())})
            queued.append(chain)
        for tp, added in run.add(queued).items():
            for _ in range(min(self._max_concurrency - run.workers.get(tp, 0), added)):
                run.spawn(self._worker(run, tp), tp)
        if letters:
            run.spawn(self._dead_letters_job(run, letters), None)
        run.on_idle = run.hook
        return True

    async def _worker(self, run: PollRun, tp: TP) -> None:
        failed = True
        try:
            if not run.poll.units:
                await self._work(run, tp, None)
            else:
                assert self._store is not None
                async with self._unit_slots:
                    if not run.queues[tp]:
                        run.retire(tp)  # the other workers finished the partition meanwhile
                    else:
                        async with self._store.session(self._group, owner=self._owner) as s:
                            await self._work(run, tp, s)
            failed = False
        finally:
            run.ended(failed=failed)

    async def _dead_letters_job(self, run: PollRun, letters: list[Delivery]) -> None:
        await run.job(self._dead_letter_all(letters, run.poll))

    async def _work(self, run: PollRun, tp: TP, session: UnitSession | None) -> None:
        """Take and run chains of partition ``tp`` until none is left; then retire."""
        poll = run.poll
        queue = run.queues[tp]
        deadlines = Deadlines()
        try:
            chain = run.take(queue)
            while chain is not None:
                following: Chain | None = None  # taken early when its head is claimed ahead
                blocked = False
                for before in chain.after:
                    if await before.wait():
                        blocked = True  # an event of its key was deferred: so is the chain
                deliveries = chain.deliveries
                last = len(deliveries) - 1
                completed = False
                try:
                    for n, (_, delivery) in enumerate(deliveries):
                        if blocked:
                            delivery.outcome = Outcome.DEFERRED
                            continue
                        if session is not None:
                            if n < last:
                                upcoming: Delivery | None = deliveries[n + 1][1]
                            else:
                                following = run.take(queue)
                                upcoming = (
                                    following.deliveries[0][1]
                                    if following is not None and _ready(following, chain)
                                    else None
                                )
                            session.expect(self._ahead(delivery, upcoming, poll))
                        await self._deliver(delivery, poll, session, deadlines)
                        blocked = delivery.outcome is Outcome.DEFERRED
                    completed = True
                finally:
                    run.end(chain, held=blocked or not completed)
                if following is None:
                    following = run.take(queue)
                chain = following
        finally:
            deadlines.close()
        run.retire(tp)

    @staticmethod
    def _ahead(current: Delivery, upcoming: Delivery | None, poll: PollState) -> str | None:
        """The key a key unit may claim with ``current``'s commit: ``upcoming``'s, when it
        will run in a key unit of this worker's session next (see
        :meth:`~eventplatform.idempotency.base.UnitSession.expect`)."""
        if upcoming is None or upcoming.route is None or upcoming.route.transactional:
            return None
        key = upcoming.idempotency_key
        if key == current.idempotency_key or poll.check(key) is not None:
            return None  # a duplicate: it will not claim
        return key

    async def _deliver(
        self, d: Delivery, poll: PollState, session: UnitSession | None, deadlines: Deadlines
    ) -> None:
        decided = poll.check(d.idempotency_key)
        if decided is not None:
            d.outcome = decided
            return
        try:
            event = d.event
        except DeserializationError as exc:
            log.error("dead-lettering undecodable %s: %s", where(d.record), exc)
            d.fail(exc, Stage.VALUE_CONVERTER)
            await self._dead_letter(d, exc, poll)
            return
        try:
            await self._attempts(d, event, poll, session, deadlines)
        finally:
            d.release()

    async def _attempts(
        self,
        d: Delivery,
        event: Any,
        poll: PollState,
        session: UnitSession | None,
        deadlines: Deadlines,
    ) -> None:
        """Call the handler until it succeeds, skips, is dead-lettered or is deferred."""
        route = d.route
        assert route is not None
        assert d.metadata is not None
        ik = d.idempotency_key
        record = d.record
        ctx = Context(
            metadata=d.metadata,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            headers=record.headers,
            group_id=self._group,
            publisher=self._plain_publisher,
            no_unit_reason=self._no_unit_txn if route.transactional else self._no_unit,
        )
        while True:
            d.attempts += 1
            attempt = d.attempts
            if attempt > 1:
                self.stats.retries += 1
            buffer: TransactionBuffer | None = None
            try:
                if route.transactional:
                    assert self._txn_producer is not None
                    buffer = TransactionBuffer(self._txn_producer, self._serializer)
                    ctx._begin_attempt(attempt, None, buffer)
                    await self._call(route, event, ctx, deadlines)
                elif session is not None:
                    async with session.unit(ik) as key_unit:
                        if not key_unit.fresh:
                            self._not_fresh(d, poll, done=key_unit.done)
                            return
                        ctx._begin_attempt(attempt, key_unit, self._plain_publisher)
                        await self._call(route, event, ctx, deadlines)
                elif poll.batch.transactional:
                    async with poll.batch.unit(ik) as unit:
                        ctx._begin_attempt(attempt, unit, self._plain_publisher)
                        await self._call(route, event, ctx, deadlines)
                else:
                    ctx._begin_attempt(attempt, None, self._plain_publisher)
                    await self._call(route, event, ctx, deadlines)
            except SkipEvent as signal:
                log.info("%s skipped %s: %s", route.name, where(record), signal.reason or "-")
                if session is not None:
                    # The unit rolled back the writes and the claim: record the key alone.
                    async with session.unit(ik) as key_unit:
                        if not key_unit.fresh:
                            self._not_fresh(d, poll, done=key_unit.done)
                            return
                self._finish(d, poll, Outcome.SKIPPED)
                return
            except (IdempotencyStoreUnavailable, ProducerFenced):
                raise  # the poll cannot complete: redo it (or stop, when fenced)
            except Exception as exc:
                delay = route.retry.next_delay(exc, attempt)
                if delay is None:
                    log.error(
                        "%s failed on %s after %d attempt(s), dead-lettering it: %s: %s",
                        route.name,
                        where(record),
                        attempt,
                        type(exc).__name__,
                        exc,
                    )
                    await self._dead_letter(d, exc, poll)
                    return
                log.warning(
                    "%s failed on %s (attempt %d/%d), retrying in %.2fs: %s: %s",
                    route.name,
                    where(record),
                    attempt,
                    route.retry.max_attempts,
                    delay,
                    type(exc).__name__,
                    exc,
                )
                if not await self.pause(delay):
                    d.outcome = Outcome.DEFERRED
                    return
                continue
            if buffer is not None and buffer.records:
                assert poll.txn is not None
                await poll.txn.send(buffer.records)
            self._finish(d, poll, Outcome.HANDLED)
            return

    @staticmethod
    def _call(route: Route[Any], event: Any, ctx: Context, deadlines: Deadlines) -> Awaitable[None]:
        # The awaitable itself, not a coroutine around it: one await level less per resume.
        return deadlines.call(route.name, route.timeout, bind_event(ctx, route.handler(event, ctx)))

    @staticmethod
    def _not_fresh(d: Delivery, poll: PollState, *, done: bool) -> None:
        """A key unit found the key done (a duplicate) or busy (deferred, read again later)."""
        if done:
            d.outcome = Outcome.DUPLICATE
            poll.found_done(d.idempotency_key)
        else:
            d.outcome = Outcome.DEFERRED

    @staticmethod
    def _finish(d: Delivery, poll: PollState, outcome: Outcome) -> None:
        d.outcome = outcome
        route = d.route
        assert route is not None
        poll.finish(
            d.idempotency_key,
            in_transaction=route.transactional,
            skipped=outcome is Outcome.SKIPPED,
        )

    # -- dead letters ----------------------------------------------------------------------

    async def _dead_letter_all(self, letters: list[Delivery], poll: PollState) -> None:
        for d in letters:
            log.error("dead-lettering undecodable %s: %s", where(d.record), d.error)
        if len(letters) == 1:
            await self._dead_letter(letters[0], letters[0].error, poll)
            return
        try:
            async with asyncio.TaskGroup() as group:
                for d in letters:
                    group.create_task(self._dead_letter(d, d.error, poll))
        except BaseExceptionGroup as failed:
            raise _unwrap(failed) from None

    async def _dead_letter(self, d: Delivery, exc: BaseException | None, poll: PollState) -> None:
        assert exc is not None
        record = d.record
        topic = record.topic
        route = d.route
        if route is not None and d.error is None:
            stage, class_name = Stage.TASK_PUT, route.name
        else:
            stage = d.stage
            class_name = _HEADERS_CLASS if stage is Stage.HEADER_CONVERTER else _DECODER_CLASS
        letter = self._dlq.letter(
            dlq_topic=self._router.dlq_topic(topic),
            topic=topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=record.headers,
            stage=stage,
            class_name=class_name,
            exc=exc,
            attempts=d.attempts,
        )
        if d.tp in poll.txn_tps:
            assert poll.txn is not None
            await poll.txn.send([letter])  # acknowledged (or aborted) with the transaction
            d.outcome = Outcome.DEAD
            return
        written = await self._dlq.write(letter, self._send_letter)
        d.outcome = Outcome.DEAD if written else Outcome.DEFERRED

    async def _send_letter(self, letter: DeadLetter) -> None:
        assert self._plain is not None
        await self._plain.send_raw(
            letter.topic, letter.value, key=letter.key, headers=letter.headers
        )
