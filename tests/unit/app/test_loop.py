"""The loop against a scripted consumer: commits never pass an unfinished event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from aiokafka import errors as kafka_errors

from eventplatform.app import AppStats, Context, RetryPolicy
from eventplatform.app.delivery import Decoder
from eventplatform.app.dlq import DeadLetterQueue
from eventplatform.app.loop import ConsumptionLoop, LoopConfig
from eventplatform.app.routing import Router
from eventplatform.errors import IdempotencyStoreUnavailable, PublishTimeout
from eventplatform.idempotency import MemoryStore
from eventplatform.registry import MemoryRegistry
from eventplatform.serde import AvroDeserializer, AvroSerializer, SubjectNameStrategy
from tests.unit.app.records import Placed, event_record, record, tp


class ScriptedConsumer:
    """Hands out scripted polls, then sets ``stopping``; records commits and seeks."""

    def __init__(self, polls: list[dict[Any, list[Any]]], stopping: asyncio.Event) -> None:
        self.polls = polls
        self.stopping = stopping
        self.commits: list[dict[Any, int]] = []
        self.seeks: list[tuple[Any, int]] = []
        self.refuse_commits = False

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        if not self.polls:
            self.stopping.set()
            return {}
        return self.polls.pop(0)

    def assignment(self) -> set[Any]:
        return {tp()}

    async def commit(self, offsets: dict[Any, int]) -> None:
        if self.refuse_commits:
            raise kafka_errors.CommitFailedError("rebalanced")
        self.commits.append(dict(offsets))

    def seek(self, partition: Any, offset: int) -> None:
        self.seeks.append((partition, offset))


class DeadLetterSink:
    def __init__(self, *, fail: bool = False) -> None:
        self.sent: list[tuple[str, bytes | None]] = []
        self.fail = fail

    async def send_raw(self, topic: str, value: bytes | None, **_: Any) -> None:
        if self.fail:
            raise PublishTimeout("dead-letter topic unreachable")
        self.sent.append((topic, value))


@pytest_asyncio.fixture
async def serializer() -> AsyncIterator[AvroSerializer]:
    async with MemoryRegistry() as registry:
        yield AvroSerializer(registry, strategy=SubjectNameStrategy.TOPIC_RECORD)


def build(
    serializer: AvroSerializer,
    store: MemoryStore,
    consumer: ScriptedConsumer,
    stopping: asyncio.Event,
    seen: list[str],
    sink: DeadLetterSink,
) -> ConsumptionLoop:
    router = Router()

    async def handle(event: Placed, ctx: Context) -> None:
        if event.amount < 0:
            raise ValueError("negative")
        seen.append(event.order_id)

    router.add(
        Router.make_route(
            Placed,
            handle,
            topic=None,
            timeout=1,
            retry=RetryPolicy(max_attempts=2, initial_backoff=0),
            transactional=False,
            dlq_topic=None,
            dlq_suffix=".dlq",
        )
    )
    policy = RetryPolicy(max_attempts=2, initial_backoff=0)

    async def no_pause(delay: float) -> bool:
        return True

    config = LoopConfig(
        router=router,
        decoder=Decoder(router, AvroDeserializer(serializer.registry)),
        store=store,
        group_id="g",
        owner="me",
        inbox=False,
        lease=30,
        plain=sink,  # type: ignore[arg-type]
        transactional=None,
        serializer=serializer,
        dlq=DeadLetterQueue(connector="c", task_id="t", group="g", policy=policy, pause=no_pause),
        max_concurrency=4,
        max_poll_records=100,
        backoff=RetryPolicy(initial_backoff=0),
        delivery_timeout=1,
        stats=AppStats(),
        stopping=stopping,
    )
    return ConsumptionLoop(config=config, consumer=consumer)


async def test_a_key_leased_elsewhere_stops_the_commit_before_it(
    serializer: AvroSerializer,
) -> None:
    r0 = await event_record(serializer, Placed(order_id="a"), 0, key=b"1", idempotency_key="ka")
    r1 = await event_record(serializer, Placed(order_id="b"), 1, key=b"2", idempotency_key="kb")
    r2 = await event_record(serializer, Placed(order_id="c"), 2, key=b"3", idempotency_key="kc")
    stopping = asyncio.Event()
    seen: list[str] = []
    async with MemoryStore() as store:
        other = store.batch("g", owner="another-member")
        async with other:
            await other.claim(["kb"])  # held by another member's open batch
            consumer = ScriptedConsumer([{tp(): [r0, r1, r2]}], stopping)
            loop = build(serializer, store, consumer, stopping, seen, DeadLetterSink())
            await loop.run()
        assert seen == ["a", "c"]
        assert consumer.commits == [{tp(): 1}]
        assert consumer.seeks == [(tp(), 1)]
        assert loop.stats.deferred == 1

        # Redelivered from offset 1 after the other member let go: b runs, c is a duplicate.
        stopping.clear()
        consumer.polls = [{tp(): [r1, r2]}]
        await loop.run()
        assert seen == ["a", "c", "b"]
        assert consumer.commits[-1] == {tp(): 3}
        assert loop.stats.skipped_duplicates == 1


async def test_a_dead_letter_not_acknowledged_is_not_committed_past(
    serializer: AvroSerializer,
) -> None:
    bad = await event_record(serializer, Placed(order_id="x", amount=-1), 0, key=b"1")
    good = await event_record(serializer, Placed(order_id="y"), 1, key=b"2")
    garbage = record(2, b"garbage", headers=good.headers)
    stopping = asyncio.Event()
    seen: list[str] = []
    async with MemoryStore() as store:
        consumer = ScriptedConsumer([{tp(): [bad, good, garbage]}], stopping)
        sink = DeadLetterSink(fail=True)
        loop = build(serializer, store, consumer, stopping, seen, sink)
        await loop.run()
        assert seen == ["y"]
        assert consumer.commits == []  # offset 0 is unfinished: nothing past it
        assert consumer.seeks == [(tp(), 0)]

        stopping.clear()
        sink.fail = False
        consumer.polls = [{tp(): [bad, good, garbage]}]
        await loop.run()
        assert seen == ["y"]  # y was done: skipped now
        assert [topic for topic, _ in sink.sent] == ["orders.dlq", "orders.dlq"]
        assert consumer.commits == [{tp(): 3}]
        assert loop.stats.dead_lettered == 2


async def test_a_refused_commit_after_a_rebalance_does_not_stop_the_loop(
    serializer: AvroSerializer,
) -> None:
    r0 = await event_record(serializer, Placed(order_id="a"), 0)
    stopping = asyncio.Event()
    seen: list[str] = []
    async with MemoryStore() as store:
        consumer = ScriptedConsumer([{tp(): [r0]}], stopping)
        consumer.refuse_commits = True
        loop = build(serializer, store, consumer, stopping, seen, DeadLetterSink())
        await loop.run()
        assert seen == ["a"]
        assert loop.stats.commit_failures == 1
        assert loop.stats.handled == 1
        # The key is recorded: the partition's next owner skips it.
        assert (await store.lookup("g", [r0_key(r0)])).popitem()[1].done


def r0_key(r: Any) -> str:
    return dict(r.headers)["ce_id"].decode()


async def test_a_store_failure_redoes_the_whole_poll(serializer: AvroSerializer) -> None:
    r0 = await event_record(serializer, Placed(order_id="a"), 5)
    r1 = await event_record(serializer, Placed(order_id="b"), 6)
    stopping = asyncio.Event()
    seen: list[str] = []

    class FlakyStore(MemoryStore):
        failures = 1

        def batch(self, group: str, *, owner: str, **options: Any) -> Any:
            if self.failures:
                self.failures -= 1
                raise IdempotencyStoreUnavailable("database restarting")
            return super().batch(group, owner=owner, **options)

    async with FlakyStore() as store:
        consumer = ScriptedConsumer([{tp(): [r0, r1]}, {tp(): [r0, r1]}], stopping)
        loop = build(serializer, store, consumer, stopping, seen, DeadLetterSink())
        await loop.run()
    assert consumer.seeks == [(tp(), 5)]
    assert seen == ["a", "b"]
    assert consumer.commits == [{tp(): 7}]
    assert (loop.stats.store_errors, loop.stats.deferred, loop.stats.handled) == (1, 2, 2)
