"""``@app.work`` on a real broker: effects once per key, release with backoff, dead letters."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from eventplatform.app import Context, EventApp
from eventplatform.app.dlq import H_ATTEMPTS, H_EXCEPTION_CLASS_NAME, H_STAGE, H_TOPIC
from eventplatform.errors import ConfigurationError
from eventplatform.idempotency import MemoryStore, SqliteStore
from eventplatform.producer import EventProducer, Outgoing
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings
from tests.integration.queue.events import Job, Report
from tests.integration.queue.helpers import eventually, headers_of, read_topic


class Permanent(Exception):
    """A failure the handler marks as not worth retrying."""

    retriable = False


class Flaky(Exception):
    """A failure worth retrying."""


async def _publish(
    settings: Settings, registry: MemoryRegistry, topic: str, items: list[Outgoing]
) -> None:
    async with EventProducer(settings=settings, registry=registry, source="/tests") as producer:
        await producer.publish_batch(items, topic=topic)


async def _serving(app: EventApp) -> asyncio.Task[None]:
    await app.start()
    task = asyncio.create_task(app.run())
    await eventually(lambda: app.running, what="the app to run")
    return task


async def test_work_runs_each_key_once_inside_the_inbox(
    settings: Settings, registry: MemoryRegistry, topic: str, group: str, tmp_path: Path
) -> None:
    store = SqliteStore(path=tmp_path / "inbox.db")
    app = EventApp("workers", registry=registry, store=store, settings=settings)
    calls: Counter[str] = Counter()

    @app.on_startup
    async def create(app: EventApp) -> None:
        await app.store.execute("CREATE TABLE effects (ikey TEXT, job TEXT)")

    @app.work(Job, topic=topic, group=group, concurrency=8)
    async def work(event: Job, ctx: Context) -> None:
        calls[ctx.idempotency_key] += 1
        await asyncio.sleep(0.005)
        await ctx.transaction.execute(
            "INSERT INTO effects VALUES (?, ?)", ctx.idempotency_key, event.job_id
        )

    # 60 events, 10 of them repeating an earlier idempotency key with a new event id.
    items = [Outgoing(Job(job_id=str(n)), idempotency_key=f"k{n}") for n in range(50)]
    items += [Outgoing(Job(job_id=f"dup{n}"), idempotency_key=f"k{n * 3}") for n in range(10)]
    await _publish(settings, registry, topic, items)
    task = await _serving(app)
    try:
        await eventually(
            lambda: app.stats.handled + app.stats.skipped_duplicates >= 60,
            within=60,
            what="every delivery to be worked",
        )
    finally:
        app.stop()
        await task
        await app.close()
    conn = sqlite3.connect(tmp_path / "inbox.db")
    try:
        rows = conn.execute("SELECT ikey, count(*) FROM effects GROUP BY ikey").fetchall()
    finally:
        conn.close()
    per_key = dict(rows)
    assert len(per_key) == 50
    assert set(per_key.values()) == {1}, {k: n for k, n in per_key.items() if n != 1}
    assert app.stats.handled == 50
    assert app.stats.skipped_duplicates == 10
    assert all(n == 1 for n in calls.values())


async def test_failures_are_released_with_backoff_then_dead_lettered_at_the_limit(
    settings: Settings,
    registry: MemoryRegistry,
    topic: str,
    group: str,
    kafka_bootstrap_servers: str,
) -> None:
    app = EventApp("workers", registry=registry, store=MemoryStore(), settings=settings)
    deliveries: dict[str, list[tuple[int, float]]] = {}

    @app.work(Job, topic=topic, group=group, concurrency=4, delivery_limit=3)
    async def work(event: Job, ctx: Context) -> None:
        deliveries.setdefault(event.job_id, []).append((ctx.attempt, time.monotonic()))
        if event.job_id == "poison":
            raise Flaky("never works")
        if event.job_id == "permanent":
            raise Permanent("cannot work")
        if event.job_id == "flaky" and ctx.attempt < 2:
            raise Flaky("works the second time")

    jobs = ["ok", "flaky", "poison", "permanent"]
    await _publish(settings, registry, topic, [Outgoing(Job(job_id=j)) for j in jobs])
    task = await _serving(app)
    try:
        await eventually(
            lambda: app.stats.handled == 2 and app.stats.dead_lettered == 2,
            within=60,
            what="two handled and two dead-lettered",
        )
    finally:
        app.stop()
        await task
        await app.close()
    # The retriable poison was delivered exactly the limit number of times, the permanent
    # failure once; each came back no sooner than its backoff.
    assert [n for n, _ in deliveries["poison"]] == [1, 2, 3]
    assert [n for n, _ in deliveries["permanent"]] == [1]
    assert [n for n, _ in deliveries["flaky"]] == [1, 2]
    backoff = settings.consumer.retry.initial_backoff
    first, second = deliveries["flaky"]
    assert second[1] - first[1] >= backoff * 0.9
    letters = await read_topic(kafka_bootstrap_servers, f"{topic}.dlq", expected=2)
    assert len(letters) == 2
    by_class = {headers_of(r)[H_EXCEPTION_CLASS_NAME]: headers_of(r) for r in letters}
    assert set(by_class) == {f"{__name__}.Flaky", f"{__name__}.Permanent"}
    assert by_class[f"{__name__}.Flaky"][H_ATTEMPTS] == "3"
    assert by_class[f"{__name__}.Permanent"][H_ATTEMPTS] == "1"
    assert all(h[H_STAGE] == "TASK_PUT" and h[H_TOPIC] == topic for h in by_class.values())


async def test_garbage_on_a_work_topic_is_dead_lettered_and_accepted(
    settings: Settings,
    registry: MemoryRegistry,
    topic: str,
    group: str,
    kafka_bootstrap_servers: str,
) -> None:
    app = EventApp("workers", registry=registry, store=MemoryStore(), settings=settings)
    seen: list[str] = []

    @app.work(Job, topic=topic, group=group)
    async def work(event: Job, ctx: Context) -> None:
        seen.append(event.job_id)

    raw = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap_servers)
    await raw.start()
    try:
        await raw.send_and_wait(topic, b"not avro at all")
        await raw.send_and_wait(topic, b"\x00\x00\x01\x86\xa0garbage")  # unknown schema id
    finally:
        await raw.stop()
    await _publish(settings, registry, topic, [Outgoing(Job(job_id="good"))])
    task = await _serving(app)
    try:
        await eventually(lambda: seen == ["good"], within=30, what="the good job")
        letters = await read_topic(kafka_bootstrap_servers, f"{topic}.dlq", expected=2)
    finally:
        app.stop()
        await task
        await app.close()
    stages = sorted(headers_of(r)[H_STAGE] for r in letters)
    assert stages == ["VALUE_CONVERTER", "VALUE_CONVERTER"]
    # Accepted: a new member of the group gets nothing back.
    again = EventApp("workers", registry=registry, store=MemoryStore(), settings=settings)
    later: list[str] = []

    @again.work(Job, topic=topic, group=group)
    async def work_again(event: Job, ctx: Context) -> None:
        later.append(event.job_id)

    await _publish(settings, registry, topic, [Outgoing(Job(job_id="marker"))])
    task = await _serving(again)
    try:
        await eventually(lambda: later == ["marker"], within=30, what="the marker")
    finally:
        again.stop()
        await task
        await again.close()


async def test_a_wrong_event_class_fails_at_start_naming_subject_and_class(
    settings: Settings, registry: MemoryRegistry, topic: str, group: str
) -> None:
    await _publish(settings, registry, topic, [Outgoing(Job(job_id="x"))])
    app = EventApp("workers", registry=registry, store=MemoryStore(), settings=settings)

    @app.work(Report, topic=topic, group=group)
    async def work(event: Report, ctx: Context) -> None:
        raise AssertionError("never runs")

    with pytest.raises(ConfigurationError) as failed:
        await app.start()
    await app.close()
    message = str(failed.value)
    assert f"{topic}-value" in message
    assert "Report" in message


async def test_one_app_mixes_handle_and_work(
    settings: Settings,
    registry: MemoryRegistry,
    topic: str,
    group: str,
) -> None:
    app = EventApp(f"mixed-{group}", registry=registry, store=MemoryStore(), settings=settings)
    streamed: list[str] = []
    worked: list[str] = []

    @app.handle(Job, topic=topic)
    async def stream(event: Job, ctx: Context) -> None:
        streamed.append(event.job_id)

    @app.work(Job, topic=topic, group=group)
    async def work(event: Job, ctx: Context) -> None:
        worked.append(event.job_id)

    await _publish(settings, registry, topic, [Outgoing(Job(job_id=str(n))) for n in range(20)])
    task = await _serving(app)
    try:
        await eventually(
            lambda: len(streamed) == 20 and len(worked) == 20, within=60, what="both handlers"
        )
    finally:
        app.stop()
        await task
        await app.close()
    assert streamed == [str(n) for n in range(20)]  # in order
    assert sorted(worked, key=int) == [str(n) for n in range(20)]


async def test_stopping_finishes_work_in_flight_and_acknowledges_it(
    settings: Settings, registry: MemoryRegistry, topic: str, group: str
) -> None:
    app = EventApp("workers", registry=registry, store=MemoryStore(), settings=settings)
    started: list[str] = []
    finished: list[str] = []

    @app.work(Job, topic=topic, group=group, concurrency=4)
    async def work(event: Job, ctx: Context) -> None:
        started.append(event.job_id)
        await asyncio.sleep(0.5)
        finished.append(event.job_id)

    await _publish(settings, registry, topic, [Outgoing(Job(job_id=str(n))) for n in range(40)])
    task = await _serving(app)
    await eventually(lambda: len(started) >= 4, within=30, what="four handlers running")
    app.stop()  # what SIGTERM does under `eventplatform serve`
    await task
    await app.close()
    assert started, "no handler ran"
    assert sorted(finished) == sorted(started)  # every handler in flight ran to its end
    assert app.stats.handled == len(finished)
    # Accepted before leaving: the next member of the group gets only the rest, each once.
    again = EventApp("workers", registry=registry, store=MemoryStore(), settings=settings)
    rest: list[str] = []

    @again.work(Job, topic=topic, group=group, concurrency=8)
    async def work_again(event: Job, ctx: Context) -> None:
        rest.append(event.job_id)

    task = await _serving(again)
    try:
        await eventually(lambda: len(rest) >= 40 - len(finished), within=30, what="the rest")
    finally:
        again.stop()
        await task
        await again.close()
    assert sorted(rest + finished, key=int) == [str(n) for n in range(40)]
