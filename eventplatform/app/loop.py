"""The consumption loop: poll, deduplicate, handle, make durable, then commit.

One poll (``getmany``, up to ``max_poll_records``) is processed at a time::

    decode        headers → metadata, one registry round trip for new schema ids, route
                  (values are decoded one by one as their handlers run)
    claim         ONE store round trip for the poll's idempotency keys: fresh / done / busy
                  (or, with key units, each event claims its key in its own transaction)
    handle        chains of one key in order, up to max_concurrency chains per partition;
                  failures retried with backoff, then dead-lettered (acknowledged first)
    durable       Kafka transaction commit (transactional topics), then the store batch
                  commit (effects written through ctx.transaction + the done-marks)
    commit        consumer offsets of the other topics; never past an unfinished event
    rewind        seek back to the first deferred event of each partition

Reading ahead (polls of key units): once the first worker of such a poll has no chain left (its
last wave has begun), the next poll is read and decoded in the background. When it is ready
while the last wave still runs, it **joins** the poll (:meth:`Dispatcher.extend`): its chains
go to the workers as they free up, so the slots do not idle through the last wave; a chain of
a key still running waits for it, and one of a key whose event was deferred is deferred whole.
The grown poll is still one poll: offsets, deferral, redo and rewind work on all of it, and it
ends (and commits) once it holds :data:`GROWTH` × ``max_poll_records`` records. A poll read
ahead that does not join (the poll ended first, or was at its size) is the next poll. What the
poll ends up seeking back (a deferred event, a redo) wins over what was read ahead and did not
join: those partitions' records are dropped and the seek is made again; after a rebalance,
nothing joins and everything read ahead is dropped (the new assignment starts from the
committed offsets). Polls of short, CPU-bound handlers do not read ahead: there it measured
slower (the next poll's deliveries live through the current one's garbage collections).

An event is *deferred*, and the committed offset stops before it, when its key is leased by
another member (it will be done or released soon), when the store or the dead-letter topic
cannot be reached, or when the app stops during its backoff. Deferred events are read again
from the seek position; the ones after them that did complete are then skipped as done.

Rebalances: ``on_partitions_revoked`` waits for the poll in flight (at most the longest
handler timeout) and commits what is pending before the partitions move. A commit refused with
``CommitFailedError`` means the group moved on and another member owns the partition now
(aiokafka #929, #1084): the loop logs it and carries on; it cannot double-apply anything,
because the effects were recorded with their keys before the commit and the next owner skips
those keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import errors as kafka_errors
from aiokafka.abc import ConsumerRebalanceListener

from eventplatform.app._groupfencing import group_metadata_of
from eventplatform.app.delivery import Decoder, Delivery, Outcome
from eventplatform.app.dispatch import Dispatcher, where
from eventplatform.app.dlq import DeadLetterQueue
from eventplatform.app.membership import StaticMembership, member_id_of
from eventplatform.app.poll import PollState
from eventplatform.app.retry import RetryPolicy
from eventplatform.app.routing import Router
from eventplatform.app.stats import AppStats
from eventplatform.app.transaction import PollTransaction
from eventplatform.errors import (
    EventPlatformError,
    IdempotencyStoreError,
    KafkaError,
    ProducerFenced,
)
from eventplatform.idempotency import Batch, Claim, IdempotencyStore
from eventplatform.observability import events as observed
from eventplatform.producer import EventProducer
from eventplatform.serde import AvroSerializer

__all__ = ["ConsumptionLoop", "LoopConfig", "RebalanceListener"]

log = logging.getLogger("eventplatform.app")

TP = Any  # aiokafka TopicPartition

GROWTH = 4  # a poll of key units takes the polls read ahead up to 4 × max_poll_records records


def _first_offsets(batches: list[list[Delivery]]) -> dict[TP, int]:
    return {batch[0].tp: batch[0].record.offset for batch in batches if batch}


@dataclass(slots=True)
class _Fetched:
    """One ``getmany``: its records, when it began (ns), and the rebalance count then.

    Read ahead, it also holds the decoded batches, or the error decoding them raised.
    """

    records: dict[TP, list[Any]]
    began: int
    generation: int
    batches: list[list[Delivery]] | None = None
    error: EventPlatformError | None = None

    def without(self, tps: set[TP]) -> _Fetched:
        """The same poll without the records of ``tps``."""
        return _Fetched(
            records={tp: records for tp, records in self.records.items() if tp not in tps},
            began=self.began,
            generation=self.generation,
            batches=None
            if self.batches is None
            else [batch for batch in self.batches if batch and batch[0].tp not in tps],
            error=self.error,
        )


@dataclass(slots=True)
class _Growing:
    """A poll of key units being processed, which the polls read ahead may join.

    ``polled`` and ``batches`` are the poll's own (extended in place); ``receipts`` holds the
    telemetry receipt of each poll in it with the deliveries it brought.
    """

    polled: dict[TP, list[Any]]
    batches: list[list[Delivery]]
    records: int
    receipts: list[tuple[Any, list[Delivery]]]


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopConfig:
    """What a :class:`ConsumptionLoop` works with and how; built by ``EventApp`` when it opens.

    Attributes:
        router: the app's routes.
        decoder: turns polls into deliveries.
        store: the idempotency store (started).
        group_id: the consumer group.
        owner: this instance's owner id in the store.
        inbox: whether store batches are transactional (handlers write through units).
        lease: seconds a non-transactional claim lasts (renewed while a poll runs).
        plain, transactional: the app's producers (either may be None when unused).
        serializer: encodes the publishes of transactional handlers.
        dlq: dead-letter builder/writer.
        max_concurrency: chains run at once per partition.
        max_poll_records: records per poll.
        backoff: backoff after failed polls (store, registry, broker unreachable).
        delivery_timeout: seconds a transaction waits for its records' acknowledgements.
        stats: the app's counters.
        stopping: set by the app to stop after the poll in flight.
        poll_timeout: seconds one empty poll waits (bounds how quickly a stop is noticed).
        membership: watches the member id of a static member (KIP-345); None when dynamic.
        units: run each event of an inbox in a key unit of its own (its own transaction, on
            its worker's connection) instead of one store batch per poll, so that handlers
            waiting on I/O overlap (see :mod:`eventplatform.app.inbox`). Polls with a
            Kafka-transactional topic still use a batch.
    """

    router: Router
    decoder: Decoder
    store: IdempotencyStore
    group_id: str
    owner: str
    inbox: bool
    lease: float
    plain: EventProducer | None
    transactional: EventProducer | None
    serializer: AvroSerializer
    dlq: DeadLetterQueue
    max_concurrency: int
    max_poll_records: int
    backoff: RetryPolicy
    delivery_timeout: float
    stats: AppStats
    stopping: asyncio.Event
    poll_timeout: float = 0.2
    membership: StaticMembership | None = None
    units: bool = False


class ConsumptionLoop:
    """Runs an app's consumer until ``config.stopping`` is set. Built and owned by the app.

    Args:
        config: what the loop works with and how.
        consumer: the started ``AIOKafkaConsumer`` (subscribed with a :class:`RebalanceListener`
            of this loop, manual commits, ``read_committed``); or :meth:`attach` it later.
    """

    def __init__(self, *, config: LoopConfig, consumer: Any = None) -> None:
        self._consumer = consumer
        self._config = config
        self.membership = config.membership
        self.stats = config.stats
        self._stopping = config.stopping
        self._poll_timeout_ms = int(config.poll_timeout * 1000)
        self._idle = asyncio.Event()
        self._idle.set()
        self._pending_commits: dict[TP, int] = {}
        self._committer: asyncio.Task[None] | None = None
        self._unhandled_seen: set[tuple[str, str]] = set()
        self._failures = 0
        self._ahead: asyncio.Task[_Fetched] | None = None  # the next poll, read ahead
        self._moved: dict[TP, int] = {}  # seeks made while a poll was read ahead
        self._generation = 0  # rebalances seen (revocations and assignments)
        self._growing: _Growing | None = None  # the poll of key units the next one may join
        self._revoke_wait = max((route.timeout for route in config.router.routes), default=30.0)
        self._dispatcher = Dispatcher(
            group_id=config.group_id,
            router=config.router,
            plain=config.plain,
            transactional=config.transactional,
            serializer=config.serializer,
            dlq=config.dlq,
            max_concurrency=config.max_concurrency,
            stats=config.stats,
            pause=self.pause,
            store=config.store,
            owner=config.owner,
        )

    def attach(self, consumer: Any) -> None:
        """Set the consumer (made after the loop, since its listener needs the loop)."""
        self._consumer = consumer

    # -- waiting ---------------------------------------------------------------------------

    async def pause(self, delay: float) -> bool:
        """Sleep ``delay`` seconds unless the app stops first; True when the sleep completed."""
        if self._stopping.is_set():
            return False
        if delay <= 0:
            return True
        try:
            await asyncio.wait_for(self._stopping.wait(), delay)
        except TimeoutError:
            return True
        return False

    def _failure_delay(self) -> float:
        self._failures += 1
        return self._config.backoff.backoff(self._failures)

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll and process until the app stops; commit what is pending on the way out.

        Raises:
            ProducerFenced: another instance took over the transactional id.
            InstanceFenced: another process joined the group with this instance id.
            KafkaError: the consumer failed for good (e.g. not authorized for a topic).
            EventPlatformError: the store failed in a way retrying cannot fix.
        """
        try:
            while not self._stopping.is_set():
                try:
                    fetched = await self._next_poll()
                except kafka_errors.KafkaError as exc:
                    if not (exc.retriable or isinstance(exc, kafka_errors.KafkaConnectionError)):
                        raise KafkaError(
                            f"consuming for group {self._config.group_id!r} failed: {exc}"
                        ) from exc
                    self.stats.connection_errors += 1
                    delay = self._failure_delay()
                    log.warning("poll failed (%s); retrying in %.2fs", exc, delay)
                    await self.pause(delay)
                    continue
                if self.membership is not None and self.membership.fenced is not None:
                    # Nothing of this poll is processed: the partitions belong to the twin now.
                    raise self.membership.fenced
                if not fetched.records:
                    if self._pending_commits:
                        self._commit_soon()
                    continue
                self._idle.clear()
                try:
                    delay = await self._process(fetched)
                finally:
                    self._idle.set()
                if delay:
                    await self.pause(delay)
        finally:
            await self._drop_ahead()
        await self._drain_commits()

    # -- reading -----------------------------------------------------------------------------

    async def _read(self) -> _Fetched:
        generation = self._generation
        began = time.time_ns()
        records = await self._consumer.getmany(
            timeout_ms=self._poll_timeout_ms, max_records=self._config.max_poll_records
        )
        return _Fetched(records, began, generation)

    def _read_next(self) -> None:
        """Start reading the next poll in the background (the current one's tail has begun)."""
        if self._ahead is None and not self._stopping.is_set():
            self._moved = {}
            self._ahead = asyncio.create_task(self._read_ahead(), name="eventplatform.read-ahead")
            self._ahead.add_done_callback(self._join)

    def _join(self, task: asyncio.Task[_Fetched]) -> None:
        """The poll read ahead is ready: add it to the poll of key units running, if it can.

        It joins only a poll whose every chain has been taken, and only while nothing moved:
        not after a rebalance, a seek or a stop, not records of a Kafka-transactional topic,
        and not past :data:`GROWTH` × ``max_poll_records`` records in all (the poll's offsets
        are committed when it ends). Otherwise it waits to be the next poll.
        """
        growing = self._growing
        if growing is None or task is not self._ahead or task.cancelled():
            return
        if task.exception() is not None:
            return  # met by _next_poll, as a poll's error
        fetched = task.result()
        config = self._config
        batches = fetched.batches
        if (
            batches is None
            or fetched.error is not None
            or fetched.generation != self._generation
            or self._moved
            or self._stopping.is_set()
            or growing.records >= GROWTH * config.max_poll_records
            or any(config.router.transactional(tp.topic) for tp in fetched.records)
        ):
            return
        deliveries = [d for batch in batches for d in batch]
        runnable = [d for d in deliveries if d.route is not None]
        letters = [d for d in deliveries if d.error is not None]
        if not self._dispatcher.extend(runnable, letters):
            return
        self._ahead = None
        count = len(deliveries)
        self.stats.polls += 1
        self.stats.received += count
        growing.records += count
        for tp, records in fetched.records.items():
            growing.polled[tp] = growing.polled.get(tp, []) + records
        own = {batch[0].tp: batch for batch in growing.batches if batch}
        for batch in batches:
            if batch:
                into = own.get(batch[0].tp)
                if into is None:
                    growing.batches.append(batch)
                else:
                    into.extend(batch)
        telemetry = observed.SWITCHES.telemetry
        if telemetry:
            receipt = telemetry.received(fetched.records, config.group_id, fetched.began)
            growing.receipts.append((receipt, deliveries))
        log.debug("%d record(s) read ahead joined the poll running", count)

    async def _read_ahead(self) -> _Fetched:
        fetched = await self._read()
        if fetched.records:
            try:
                fetched.batches = await self._config.decoder.decode(fetched.records)
            except EventPlatformError as exc:
                fetched.error = exc  # met when the poll is processed, as if decoded then
        return fetched

    async def _next_poll(self) -> _Fetched:
        """The poll read ahead, less what the last poll's seeks or a rebalance overtook."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return await self._read()
        fetched = await ahead  # its Kafka errors are met here, as a poll's would be
        moved, self._moved = self._moved, {}
        if fetched.generation != self._generation:
            # A rebalance since: the assignment starts from the committed offsets.
            log.debug("a rebalance overtook the poll read ahead; dropped")
            return _Fetched({}, fetched.began, self._generation)
        overtaken = {tp for tp in moved if tp in fetched.records}
        if not overtaken:
            return fetched
        for tp in overtaken:
            # Whether the records were read before the seek or after it, read from there.
            records = fetched.records[tp]
            log.debug(
                "dropped %d record(s) of %s[%d] read ahead from offset %d; reading again from "
                "offset %d",
                len(records),
                tp.topic,
                tp.partition,
                records[0].offset,
                moved[tp],
            )
            self._seek(tp, moved[tp])
        return fetched.without(overtaken)

    async def _drop_ahead(self) -> None:
        # Records read ahead and not processed are not committed: read again after a restart.
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.cancel()
            await asyncio.gather(ahead, return_exceptions=True)

    # -- processing --------------------------------------------------------------------------

    async def _process(self, fetched: _Fetched) -> float:
        """Process one poll; return how long to wait before the next (0 when all went well)."""
        polled = fetched.records
        stats = self.stats
        stats.polls += 1
        stats.received += sum(len(records) for records in polled.values())
        try:
            if fetched.error is not None:
                raise fetched.error
            batches = fetched.batches
            if batches is None:
                batches = await self._config.decoder.decode(polled)
        except EventPlatformError as exc:
            if not exc.retriable:
                raise
            stats.connection_errors += 1
            log.warning("decoding a poll failed (%s); reading it again later", exc)
            for tp, records in polled.items():
                self._seek(tp, records[0].offset)
            stats.deferred += sum(len(records) for records in polled.values())
            return self._failure_delay()
        telemetry = observed.SWITCHES.telemetry  # a receive span per poll, while traced
        growing = _Growing(polled, batches, sum(len(b) for b in batches), [])
        if telemetry:
            receipt = telemetry.received(polled, self._config.group_id, fetched.began)
            growing.receipts.append((receipt, [d for batch in batches for d in batch]))

        txn_tps = {tp for tp in polled if self._config.router.transactional(tp.topic)}
        poll = PollState(batches, txn_tps)
        rewound: set[TP] = set()
        try:
            await self._settle(poll, growing)
        except EventPlatformError as exc:
            # Broker-side failures of the poll's Kafka transaction aborted it: redo the poll,
            # even when the error is not retriable as such (nothing may be dropped).
            redo = exc.retriable or isinstance(exc, KafkaError)
            if not redo or isinstance(exc, ProducerFenced):
                raise
            if isinstance(exc, IdempotencyStoreError):
                stats.store_errors += 1
            else:
                stats.connection_errors += 1
            log.warning("a poll failed (%s); reading it again later", exc)
            # Nothing of it is durable, except a Kafka transaction that committed already.
            rewound = set(polled) - (txn_tps if poll.committed else set())
        else:
            if txn_tps and not poll.committed:
                rewound = set(txn_tps)

        offsets = self._offsets(batches, skip=txn_tps | rewound)
        for tp, offset in offsets.items():
            self._pending_commits[tp] = max(offset, self._pending_commits.get(tp, -1))
        if self._pending_commits:
            self._commit_soon()
        first = _first_offsets(batches)
        for tp in rewound:
            self._seek(tp, first[tp])
        deferred = self._rewind_deferred(batches, skip=rewound)
        self._account(batches, rewound)
        if telemetry:
            for receipt, deliveries in growing.receipts:
                telemetry.poll_done(receipt, deliveries)
        if rewound or deferred:
            return self._failure_delay()
        self._failures = 0
        return 0.0

    async def _settle(self, poll: PollState, growing: _Growing) -> None:
        """Claim, handle and make durable: Kafka transaction first, then the store batch."""
        runnable = [d for batch in poll.batches for d in batch if d.route is not None]
        letters = [d for batch in poll.batches for d in batch if d.error is not None]
        if self._config.units and self._config.inbox and not poll.txn_tps:
            # Each event claims, writes and commits in its own transaction; nothing to settle.
            poll.open_units()
            # Handlers waiting on I/O in transactions of their own: the next poll is read
            # while the last wave runs, and joins it (see "Reading ahead" above).
            self._growing = growing
            try:
                await self._dispatcher.run(poll, runnable, letters, on_idle=self._read_next)
            finally:
                self._growing = None
            return
        keys = [d.idempotency_key for d in runnable]
        async with self._config.store.batch(
            self._config.group_id,
            owner=self._config.owner,
            lease=self._config.lease,
            transactional=self._config.inbox,
        ) as batch:
            claim = await batch.claim(keys) if keys else Claim()
            txn: PollTransaction | None = None
            if poll.txn_tps:
                assert self._config.transactional is not None
                txn = PollTransaction(
                    self._config.transactional,
                    group_id=self._config.group_id,
                    timeout=self._config.delivery_timeout,
                )
                await txn.begin()
            poll.open(batch, claim, txn)
            renewer = None
            if keys and not batch.transactional:
                renewer = asyncio.create_task(self._renew(batch), name="eventplatform.renew")
            try:
                await self._dispatcher.run(poll, runnable, letters)
                if txn is not None:
                    await self._commit_transaction(poll, txn)
            except BaseException:
                if txn is not None:
                    await txn.abort()
                raise
            finally:
                if renewer is not None:
                    renewer.cancel()
                    await asyncio.gather(renewer, return_exceptions=True)

    async def _commit_transaction(self, poll: PollState, txn: PollTransaction) -> None:
        offsets = self._offsets([b for b in poll.batches if b and b[0].tp in poll.txn_tps])
        # The generation of now: a member expelled meanwhile has its offsets refused (KIP-447).
        txn.group_id = group_metadata_of(self._consumer, self._config.group_id)
        try:
            await txn.commit(offsets)
        except ProducerFenced:
            raise
        except KafkaError as exc:
            # aiokafka #920: the consumer does not rewind on abort; _process seeks back.
            self.stats.transactions_aborted += 1
            log.warning("the poll's Kafka transaction was aborted (%s); reading it again", exc)
            return
        poll.transaction_committed()
        self.stats.commits += 1

    async def _renew(self, batch: Batch) -> None:
        # Non-transactional claims are leases: keep them while the poll runs long.
        interval = max(self._config.lease / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            try:
                lost = await batch.renew()
            except EventPlatformError as exc:
                log.warning("renewing idempotency leases failed: %s", exc)
                continue
            if lost:
                log.warning(
                    "%d idempotency lease(s) passed to another member before their events "
                    "finished; their effects may run twice",
                    len(lost),
                )

    # -- offsets ---------------------------------------------------------------------------

    @staticmethod
    def _offsets(batches: list[list[Delivery]], skip: set[TP] | None = None) -> dict[TP, int]:
        """Per partition: the first deferred offset, else one past the last record."""
        offsets: dict[TP, int] = {}
        for batch in batches:
            if not batch or (skip and batch[0].tp in skip):
                continue
            position = batch[-1].record.offset + 1
            for d in batch:
                if d.outcome is Outcome.DEFERRED or d.outcome is Outcome.PENDING:
                    position = d.record.offset
                    break
            if position > batch[0].record.offset:
                offsets[batch[0].tp] = position
        return offsets

    def _rewind_deferred(self, batches: list[list[Delivery]], skip: set[TP]) -> bool:
        rewound = False
        for batch in batches:
            if not batch or batch[0].tp in skip:
                continue
            for d in batch:
                if d.outcome is Outcome.DEFERRED or d.outcome is Outcome.PENDING:
                    self._seek(d.tp, d.record.offset)
                    rewound = True
                    break
        return rewound

    def _seek(self, tp: TP, offset: int) -> None:
        if self._ahead is not None:
            self._moved[tp] = offset  # the poll read ahead may hold records past it
        # Revoked meanwhile: the next owner starts from the committed offset.
        with contextlib.suppress(kafka_errors.IllegalStateError, AssertionError):
            self._consumer.seek(tp, offset)

    def _commit_soon(self) -> None:
        """Commit the pending offsets in the background, one commit in flight at a time.

        The next poll is processed while the commit travels: its effects are durable already,
        so the commit only records progress. Offsets that arrive meanwhile go out with the
        next commit, so commits stay in order and adapt to the coordinator's latency.
        """
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(
                self._commit_pending(), name="eventplatform.commit"
            )

    async def _commit_pending(self) -> None:
        while self._pending_commits:
            if not await self._flush_commits():
                return  # failed: the offsets wait for the next poll's commit

    async def _drain_commits(self) -> None:
        """Wait for the commit in flight, then commit what is still pending (bounded).

        Bounded by the delivery timeout, so that a stop during a broker outage does not hang:
        offsets left uncommitted only mean records read again after a restart, and skipped
        as done.
        """
        try:
            async with asyncio.timeout(self._config.delivery_timeout):
                committer = self._committer
                if committer is not None:
                    await asyncio.gather(committer, return_exceptions=True)
                await self._flush_commits()
        except TimeoutError:
            self.stats.commit_failures += 1
            log.warning(
                "offsets not committed within %.0fs; their records will be read again and "
                "skipped as done",
                self._config.delivery_timeout,
            )

    async def _flush_commits(self) -> bool:
        """Commit the pending offsets of partitions still assigned; False to try again later."""
        pending, self._pending_commits = self._pending_commits, {}
        if not pending:
            return True
        assigned = self._consumer.assignment()
        offsets = {tp: offset for tp, offset in pending.items() if tp in assigned}
        if not offsets:
            return True
        try:
            await self._consumer.commit(offsets)
        except (kafka_errors.CommitFailedError, kafka_errors.IllegalStateError) as exc:
            self.stats.commit_failures += 1
            log.info(
                "offset commit refused after a rebalance (%s); the partitions' new owner "
                "skips the keys already done here",
                exc,
            )
            return True
        except kafka_errors.KafkaError as exc:
            self.stats.commit_failures += 1
            self.stats.connection_errors += 1
            log.warning("offset commit failed (%s); retried with the next commit", exc)
            for tp, offset in offsets.items():
                self._pending_commits[tp] = max(offset, self._pending_commits.get(tp, -1))
            return False
        self.stats.commits += 1
        return True

    def _account(self, batches: list[list[Delivery]], rewound: set[TP]) -> None:
        # Counted locally and added to the stats once per poll (it runs once per record).
        handled = duplicates = skipped = unhandled = dead = deferred = 0
        for batch in batches:
            if not batch:
                continue
            if batch[0].tp in rewound:
                deferred += len(batch)
                continue
            for d in batch:
                outcome = d.outcome
                if outcome is Outcome.HANDLED:
                    handled += 1
                elif outcome is Outcome.DUPLICATE:
                    duplicates += 1
                elif outcome is Outcome.SKIPPED:
                    skipped += 1
                elif outcome is Outcome.UNHANDLED:
                    unhandled += 1
                    self._report_unhandled(d)
                elif outcome is Outcome.DEAD:
                    dead += 1
                else:
                    deferred += 1
        stats = self.stats
        stats.handled += handled
        stats.skipped_duplicates += duplicates
        stats.skipped += skipped
        stats.unhandled += unhandled
        stats.dead_lettered += dead
        stats.deferred += deferred

    def _report_unhandled(self, d: Delivery) -> None:
        # Once at INFO per topic and type (a shared topic may carry many such records).
        seen = (d.record.topic, _type_of(d))
        if seen in self._unhandled_seen:
            log.debug("no handler for %s (type %s); skipped", where(d.record), seen[1])
            return
        self._unhandled_seen.add(seen)
        log.info(
            "no handler for type %s on topic %s: its records are skipped (first at %s)",
            seen[1],
            seen[0],
            where(d.record),
        )

    # -- rebalances ------------------------------------------------------------------------

    async def on_revoked(self, revoked: set[TP]) -> None:
        """Let the poll in flight finish (bounded) and commit before partitions move."""
        self._generation += 1  # what was read ahead is dropped
        if not self._idle.is_set():
            try:
                await asyncio.wait_for(self._idle.wait(), self._revoke_wait)
            except TimeoutError:
                log.warning(
                    "the poll in flight did not finish within %.0fs of a rebalance; its "
                    "partitions move on and their new owner waits for its idempotency keys",
                    self._revoke_wait,
                )
        await self._drain_commits()
        for tp in revoked:
            self._pending_commits.pop(tp, None)

    def on_assigned(self) -> None:
        """After a join: let the static-membership watch see the member id it got."""
        self._generation += 1
        if self.membership is not None:
            self.membership.joined(member_id_of(self._consumer))

    async def before_rejoin(self) -> None:
        """Before aiokafka rejoins: a static member displaced by a live twin stays out.

        It never returns then: aiokafka rejoins after this callback whatever it returns, and
        that JoinGroup would displace the twin once more. It holds the coordinator's task
        here while the poll loop raises :class:`~eventplatform.errors.InstanceFenced`, until
        the app closes the consumer (:func:`~eventplatform.app.membership.stop_consumer`
        cancels the task first).
        """
        membership = self.membership
        if membership is not None and membership.rejoining(member_id_of(self._consumer)):
            await asyncio.Future()


def _type_of(d: Delivery) -> str:
    return d.metadata.type if d.metadata is not None else "?"


class RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Connects aiokafka's rebalance callbacks to the loop."""

    def __init__(self, loop: ConsumptionLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        """Before the partitions move: finish the poll in flight and commit."""
        await self._loop.on_revoked(set(revoked))
        await self._loop.before_rejoin()

    async def on_partitions_assigned(self, assigned: set[Any]) -> None:
        """After a rebalance: count it (positions come from the committed offsets)."""
        self._loop.stats.rebalances += 1
        self._loop.on_assigned()
        log.info("assigned %d partition(s): %s", len(assigned), sorted(map(tuple, assigned)))
