"""Concurrency inside the inbox: on PostgreSQL each event runs in its own transaction, at once.

The handlers write through ``ctx.transaction`` into an effect table without a unique key, so
a second application of a key shows up as a second row. Events of one key still run in order;
a failed attempt's writes roll back; the committed offset never passes an unfinished event.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from eventplatform.app import Context, EventApp
from eventplatform.idempotency import PostgresStore
from eventplatform.producer import EventProducer, Outgoing
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings
from tests.integration.app.events import OrderPlaced
from tests.integration.app.helpers import eventually, headers_of, read_all, running
from tests.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

CONCURRENCY = 16


@pytest.fixture
def concurrent(settings: Settings) -> Settings:
    """The tests' settings with ``max_concurrency`` 16."""
    consumer = settings.consumer.model_copy(update={"max_concurrency": CONCURRENCY})
    return settings.model_copy(update={"consumer": consumer})


@pytest_asyncio.fixture
async def effects(postgres_dsn: str) -> AsyncIterator[str]:
    """A fresh effect table: (idempotency key, order id, amount), no unique key."""
    name = f"effects_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(f"CREATE TABLE {name} (ik text, order_id text, amount int)")
        yield name
        await conn.execute(f"DROP TABLE {name}")
    finally:
        await conn.close()


def store(
    postgres_dsn: str, *, table: str | None = None, lock_timeout: float = 10
) -> PostgresStore:
    return PostgresStore(
        dsn=postgres_dsn,
        table=table or f"idem_{uuid.uuid4().hex[:8]}",
        max_connections=CONCURRENCY + 1,
        purge_interval=None,
        lock_timeout=lock_timeout,
    )


async def rows(postgres_dsn: str, table: str) -> list[Any]:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        return list(await conn.fetch(f"SELECT ik, order_id, amount FROM {table}"))
    finally:
        await conn.close()


def app_for(name: str, group: str, registry: MemoryRegistry, settings: Settings, dsn: str) -> Any:
    return EventApp(name, group_id=group, registry=registry, settings=settings, store=store(dsn))


def with_held_key(topic: str, count: int, *, keys: int) -> list[Outgoing]:
    """``count`` orders ``o0``… keyed ``k<i % keys>``, with order ``held`` (key and
    idempotency key ``held``) inserted at offset 10."""
    items = [
        Outgoing(OrderPlaced(order_id=f"o{i}"), key=f"k{i % keys}", topic=topic)
        for i in range(count)
    ]
    held = OrderPlaced(order_id="held")
    items.insert(10, Outgoing(held, key="held", topic=topic, idempotency_key="held"))
    return items


async def committed_offset(admin: AIOKafkaAdminClient, group: str, tp: TopicPartition) -> int:
    """The group's committed offset of ``tp``; -1 when none is."""
    offsets = await admin.list_consumer_group_offsets(group, partitions=[tp])
    meta = offsets.get(tp)
    return -1 if meta is None else meta.offset


@contextlib.asynccontextmanager
async def held_elsewhere(dsn: str, table: str, group: str, key: str) -> AsyncIterator[None]:
    """Another member holds ``key`` in an open transaction until exit, then rolls back."""

    class Release(Exception):
        pass

    holding, release = asyncio.Event(), asyncio.Event()

    async def hold(other: PostgresStore) -> None:
        async with other.unit(group, key, owner="another-member") as held:
            assert held.fresh
            holding.set()
            await release.wait()
            raise Release

    async with store(dsn, table=table) as other:
        holder = asyncio.create_task(hold(other))
        try:
            await until(holding.is_set, what=f"another member to hold {key!r}")
            yield
        finally:
            release.set()
            with pytest.raises(Release):
                await holder


async def test_handlers_waiting_on_io_overlap_up_to_the_limit(
    concurrent: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    group: str,
    postgres_dsn: str,
    effects: str,
) -> None:
    topic = unique_topic("orders")
    app = app_for("overlap", group, registry, concurrent, postgres_dsn)
    now = most = 0

    @app.handle(OrderPlaced, topic=topic)
    async def record(event: OrderPlaced, ctx: Context) -> None:
        nonlocal now, most
        await ctx.transaction.execute(
            f"INSERT INTO {effects} VALUES ($1, $2, $3)", ctx.idempotency_key, event.order_id, 0
        )
        now += 1
        most = max(most, now)
        try:
            # Held until 8 handlers are in their transactions at once (a serial inbox, one
            # transaction per poll, never gets past 1 and times out here).
            await eventually(lambda: most >= 8, what="8 handlers running at once")
        finally:
            now -= 1

    await producer.publish_batch(
        [Outgoing(OrderPlaced(order_id=f"o{i}"), key=f"k{i}", topic=topic) for i in range(64)]
    )
    async with running(app):
        await eventually(lambda: app.stats.handled == 64, within=30)
    assert 8 <= most <= CONCURRENCY
    written = await rows(postgres_dsn, effects)
    assert sorted(row["order_id"] for row in written) == sorted(f"o{i}" for i in range(64))


async def test_events_of_one_key_run_in_order_and_apply_once(
    concurrent: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    group: str,
    postgres_dsn: str,
    effects: str,
) -> None:
    topic = unique_topic("orders")
    app = app_for("order", group, registry, concurrent, postgres_dsn)
    seen: dict[str, list[int]] = {}

    @app.handle(OrderPlaced, topic=topic)
    async def record(event: OrderPlaced, ctx: Context) -> None:
        await ctx.transaction.execute(
            f"INSERT INTO {effects} VALUES ($1, $2, $3)",
            ctx.idempotency_key,
            event.order_id,
            event.amount,
        )
        await asyncio.sleep(0.002 * (event.amount % 3))  # I/O of varying length
        seen.setdefault(event.order_id, []).append(event.amount)

    items = [
        Outgoing(OrderPlaced(order_id=f"o{key}", amount=seq), key=f"k{key}", topic=topic)
        for seq in range(10)
        for key in range(24)
    ]
    # A copy of an earlier event (same idempotency key): applied once.
    items.append(
        Outgoing(
            OrderPlaced(order_id="o0", amount=0), key="k0", topic=topic, idempotency_key="again"
        )
    )
    items.insert(
        5,
        Outgoing(
            OrderPlaced(order_id="o0", amount=0), key="k0", topic=topic, idempotency_key="again"
        ),
    )
    await producer.publish_batch(items)
    async with running(app):
        await eventually(
            lambda: app.stats.handled + app.stats.skipped_duplicates == len(items), within=30
        )
    assert app.stats.skipped_duplicates == 1
    for order, amounts in seen.items():
        expected = [0, *range(10)] if order == "o0" else list(range(10))
        assert amounts == expected, f"{order} ran out of order: {amounts}"
    written = await rows(postgres_dsn, effects)
    assert len(written) == len(items) - 1
    assert len({row["ik"] for row in written}) == len(written)


async def test_a_failed_attempt_rolls_back_and_is_retried_or_dead_lettered(
    concurrent: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    group: str,
    postgres_dsn: str,
    effects: str,
    kafka_bootstrap_servers: str,
) -> None:
    topic, dlq = unique_topic("orders"), unique_topic("failed")
    app = app_for("failing", group, registry, concurrent, postgres_dsn)

    @app.handle(OrderPlaced, topic=topic, dlq_topic=dlq)
    async def record(event: OrderPlaced, ctx: Context) -> None:
        await ctx.transaction.execute(
            f"INSERT INTO {effects} VALUES ($1, $2, $3)", ctx.idempotency_key, event.order_id, 0
        )
        if event.amount == 1 and ctx.attempt == 1:
            raise RuntimeError("fails once after writing: the write is rolled back")
        if event.amount == 2:
            raise RuntimeError("always fails: dead-lettered after 3 attempts")

    await producer.publish_batch(
        [
            Outgoing(OrderPlaced(order_id=f"o{i}", amount=i % 3 if i < 6 else 0), topic=topic)
            for i in range(30)
        ]
    )
    async with running(app):
        await eventually(lambda: app.stats.handled + app.stats.dead_lettered == 30, within=30)
    assert app.stats.dead_lettered == 2  # o2, o5
    assert app.stats.retries == 2 + 2 * 2  # o1, o4 once; o2, o5 twice
    written = await rows(postgres_dsn, effects)
    assert sorted(row["order_id"] for row in written) == sorted(
        f"o{i}" for i in range(30) if i not in (2, 5)
    )
    letters = await read_all(kafka_bootstrap_servers, dlq, expected=2)
    assert (
        sorted(headers_of(r)["__connect.errors.exception.message"] for r in letters)
        == ["always fails: dead-lettered after 3 attempts"] * 2
    )


async def test_the_committed_offset_never_passes_an_unfinished_event(
    concurrent: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    group: str,
    postgres_dsn: str,
    effects: str,
    kafka_admin: AIOKafkaAdminClient,
) -> None:
    topic = unique_topic("orders")
    table = f"idem_{uuid.uuid4().hex[:8]}"
    app = EventApp(
        "offsets",
        group_id=group,
        registry=registry,
        settings=concurrent,
        store=store(postgres_dsn, table=table, lock_timeout=0.3),
    )

    @app.handle(OrderPlaced, topic=topic)
    async def record(event: OrderPlaced, ctx: Context) -> None:
        await ctx.transaction.execute(
            f"INSERT INTO {effects} VALUES ($1, $2, $3)", ctx.idempotency_key, event.order_id, 0
        )

    items = with_held_key(topic, 40, keys=40)
    tp = TopicPartition(topic, 0)

    async def written() -> int:
        return len(await rows(postgres_dsn, effects))

    async def written_is(n: int) -> bool:
        return await written() == n

    async def committed_is(n: int) -> bool:
        return await committed_offset(kafka_admin, group, tp) == n

    async with running(app):
        async with held_elsewhere(postgres_dsn, table, group, "held"):
            await producer.publish_batch(items)
            await until(functools.partial(written_is, 40), what="the 40 other events applied")
            await until(functools.partial(committed_is, 10), what="offset 10 committed")
            # Read again and deferred twice more: the offset still stops before it.
            deferred = app.stats.deferred
            await eventually(lambda: app.stats.deferred >= deferred + 2, within=30)
            assert await committed_offset(kafka_admin, group, tp) == 10
            assert await written() == 40
        await until(functools.partial(committed_is, 41), what="every offset committed", within=30)
    names = sorted(row["order_id"] for row in await rows(postgres_dsn, effects))
    assert names == sorted([f"o{i}" for i in range(40)] + ["held"])


async def test_polls_read_ahead_join_the_poll_or_are_dropped_by_its_seek_back(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    group: str,
    postgres_dsn: str,
    effects: str,
    kafka_admin: AIOKafkaAdminClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Polls of 5 records, 4 workers: the next poll is read while a poll's last wave runs.

    Offset 10's key is held by another member, so its poll (10-14) defers it. The polls read
    ahead meanwhile join it, up to 20 records; a second event of the held Kafka key (offset
    17, in a poll that joined) is deferred behind the first without running. The poll then
    seeks back to 10, overtaking what was read ahead past it, which is dropped and read again.
    Every event applies once, each key's events in offset order; the committed offset stops
    at 10 until the key is let go, then reaches the end.
    """
    caplog.set_level(logging.DEBUG, logger="eventplatform.app")
    topic = unique_topic("orders")
    consumer = settings.consumer.model_copy(update={"max_concurrency": 4, "max_poll_records": 5})
    table = f"idem_{uuid.uuid4().hex[:8]}"
    app = EventApp(
        "read-ahead",
        group_id=group,
        registry=registry,
        settings=settings.model_copy(update={"consumer": consumer}),
        store=store(postgres_dsn, table=table, lock_timeout=0.05),
    )
    ran: list[tuple[str, int]] = []  # (Kafka key, offset), in the order the handlers ran

    @app.handle(OrderPlaced, topic=topic)
    async def record(event: OrderPlaced, ctx: Context) -> None:
        await ctx.transaction.execute(
            f"INSERT INTO {effects} VALUES ($1, $2, $3)",
            ctx.idempotency_key,
            event.order_id,
            ctx.offset,
        )
        assert ctx.key is not None
        ran.append((ctx.key.decode(), ctx.offset))

    items = with_held_key(topic, 40, keys=6)
    second = OrderPlaced(order_id="held-again")
    items.insert(17, Outgoing(second, key="held", topic=topic, idempotency_key="held-again"))
    tp = TopicPartition(topic, 0)

    async def committed_is(n: int) -> bool:
        return await committed_offset(kafka_admin, group, tp) == n

    def logged(wanted: str) -> Callable[[], bool]:
        return lambda: any(wanted in r.getMessage() for r in caplog.records)

    async with running(app):
        async with held_elsewhere(postgres_dsn, table, group, "held"):
            await producer.publish_batch(items)
            await until(logged("read ahead joined the poll running"), what="a poll joining")
            await until(logged("; reading again from offset 10"), what="a read-ahead dropped")
            await until(functools.partial(committed_is, 10), what="offset 10 committed")
            # Read again, joined and deferred twice more: the offset still stops before it.
            deferred = app.stats.deferred
            await eventually(lambda: app.stats.deferred >= deferred + 2, within=30)
            assert await committed_is(10)
            assert ("held", 17) not in ran
        await until(functools.partial(committed_is, 42), what="every offset committed", within=30)
    applied = await rows(postgres_dsn, effects)
    assert sorted(row["order_id"] for row in applied) == sorted(
        [f"o{i}" for i in range(40)] + ["held", "held-again"]
    )
    assert sorted(row["amount"] for row in applied) == list(range(42))  # each offset once
    for key in {k for k, _ in ran}:
        offsets = [offset for k, offset in ran if k == key]
        assert offsets == sorted(offsets), f"{key} ran out of order: {offsets}"
    assert [offset for k, offset in ran if k == "held"] == [10, 17]
