"""EventQueue on a real broker: put/get/settle, sharing, redelivery, dead letters, leaving."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer

from eventplatform.app.dlq import (
    H_EXCEPTION_CLASS_NAME,
    H_EXCEPTION_MESSAGE,
    H_OFFSET,
    H_STAGE,
    H_TOPIC,
)
from eventplatform.cloudevents import EventMetadata
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings
from tests.integration.queue.events import Job
from tests.integration.queue.helpers import (
    get_within,
    headers_of,
    job_queue,
    read_topic,
)


async def test_put_get_task_done_round_trip(
    settings: Settings, registry: MemoryRegistry, topic: str, group: str
) -> None:
    async with job_queue(settings, registry, topic, group) as queue:
        await queue.put(Job(job_id="a", size=1), key="k1", idempotency_key="job-a")
        await queue.put_batch([Job(job_id="b"), Job(job_id="c")])
        items = [await get_within(queue) for _ in range(3)]
        assert [item.event for item in items] == [
            Job(job_id="a", size=1),
            Job(job_id="b"),
            Job(job_id="c"),
        ]
        assert all(isinstance(item.event, Job) for item in items)
        assert items[0].idempotency_key == "job-a"
        assert items[0].record.key == b"k1"
        assert items[0].metadata.type == "com.example.jobs.Job"
        assert items[1].idempotency_key == items[1].metadata.id
        assert [item.delivery_count for item in items] == [1, 1, 1]
        for item in items:
            await item.task_done()
        await queue.join()
        assert queue.unfinished == 0
        assert queue.consumer.failed_acknowledgements == 0
        # Accepted items never come back: the next item is the one put after them.
        await queue.put(Job(job_id="marker"))
        assert (await get_within(queue)).event.job_id == "marker"


async def test_two_members_share_one_partition(
    settings: Settings, registry: MemoryRegistry, topic: str, group: str
) -> None:
    total = 300
    seen: dict[str, list[str]] = {"first": [], "second": []}
    async with (
        job_queue(settings, registry, topic, group, prefetch=5) as first,
        job_queue(settings, registry, topic, group, prefetch=5) as second,
    ):
        # Both members join and get the (only) partition before any work exists.
        for queue in (first, second):
            assert await queue.get_batch(1, timeout=0.1) == []
            assert await queue.consumer.wait_assigned(20)
        await first.put_batch([Job(job_id=str(n)) for n in range(total)])

        async def work(name: str, queue: object) -> None:
            assert queue is first or queue is second
            while sum(len(v) for v in seen.values()) < total:
                for item in await queue.get_batch(5, timeout=0.5):
                    seen[name].append(item.event.job_id)
                    await asyncio.sleep(0.002)  # the work itself: lets the other member fetch
                    await item.task_done()

        await asyncio.wait_for(
            asyncio.gather(work("first", first), work("second", second)), timeout=60
        )
        await first.join()
        await second.join()
    handled = seen["first"] + seen["second"]
    assert sorted(handled, key=int) == [str(n) for n in range(total)], "each job exactly once"
    assert seen["first"], "the first member got nothing"
    assert seen["second"], "the second member got nothing"


async def test_release_redelivers_with_a_higher_delivery_count(
    settings: Settings, registry: MemoryRegistry, topic: str, group: str
) -> None:
    async with job_queue(settings, registry, topic, group) as queue:
        await queue.put(Job(job_id="again"))
        first = await get_within(queue)
        assert first.delivery_count == 1
        await first.release()
        second = await get_within(queue)
        assert second.event == Job(job_id="again")
        assert second.idempotency_key == first.idempotency_key
        assert second.record.offset == first.record.offset
        assert second.delivery_count == 2
        await second.task_done()
        await queue.join()


async def test_release_with_delay_holds_the_item_back(
    settings: Settings, registry: MemoryRegistry, topic: str, group: str
) -> None:
    async with job_queue(settings, registry, topic, group) as queue:
        await queue.put(Job(job_id="later"))
        item = await get_within(queue)
        released = time.monotonic()
        await item.release(delay=1.5)
        assert queue.unfinished == 1  # held by this member until the delay is over
        again = await get_within(queue)
        assert time.monotonic() - released >= 1.4
        assert again.event.job_id == "later"
        assert again.delivery_count == 2
        await again.task_done()
        await queue.join()


@pytest.mark.slow
async def test_a_release_delay_longer_than_the_lock_renews_the_lock(
    settings: Settings, registry: MemoryRegistry, topic: str, group: str
) -> None:
    configs = {"share.auto.offset.reset": "earliest", "share.record.lock.duration.ms": "15000"}
    async with job_queue(settings, registry, topic, group, group_configs=configs) as queue:
        await queue.put(Job(job_id="patient"))
        item = await get_within(queue)
        assert queue.consumer.supports_renew
        released = time.monotonic()
        await item.release(delay=20)
        again = await get_within(queue, within=45)
        # Without renewals the 15 s lock would have handed it out again before the delay.
        assert time.monotonic() - released >= 19.5
        assert again.event.job_id == "patient"
        assert again.delivery_count == 2
        await again.task_done()
        await queue.join()
        assert queue.consumer.failed_acknowledgements == 0


@pytest.mark.slow
async def test_an_item_never_settled_comes_back_when_its_lock_expires(
    settings: Settings, registry: MemoryRegistry, topic: str, group: str
) -> None:
    # 15 s is the smallest lock a group may ask for (group.share.min.record.lock.duration.ms);
    # per-group lock durations are KIP-1240 (Kafka 4.3+).
    configs = {"share.auto.offset.reset": "earliest", "share.record.lock.duration.ms": "15000"}
    async with job_queue(settings, registry, topic, group, group_configs=configs) as queue:
        await queue.put(Job(job_id="forgotten"))
        held = await get_within(queue)
        assert queue.consumer.lock_timeout == 15.0
        started = time.monotonic()
        again = await get_within(queue, within=40)
        assert time.monotonic() - started >= 10  # the lock ran out; nothing released it
        assert again.event.job_id == "forgotten"
        assert again.delivery_count == 2
        # The expired delivery no longer settles the record: its successor does.
        await held.release()
        assert queue.stale_settlements == 1
        await again.task_done()
        await queue.join()
        assert queue.consumer.failed_acknowledgements == 0
        await queue.put(Job(job_id="marker"))
        assert (await get_within(queue)).event.job_id == "marker"  # accepted, not released


async def test_reject_dead_letters_and_is_not_redelivered(
    settings: Settings,
    registry: MemoryRegistry,
    topic: str,
    group: str,
    kafka_bootstrap_servers: str,
) -> None:
    async with job_queue(settings, registry, topic, group) as queue:
        await queue.put(Job(job_id="bad"), key="b")
        item = await get_within(queue)
        await item.reject("no such address")
        await queue.put(Job(job_id="marker"))
        assert (await get_within(queue)).event.job_id == "marker"  # the rejected one is gone
        letters = await read_topic(kafka_bootstrap_servers, f"{topic}.dlq", expected=1)
    assert len(letters) == 1
    letter = letters[0]
    headers = headers_of(letter)
    assert letter.key == b"b"
    assert letter.value == item.record.value
    assert headers[H_TOPIC] == topic
    assert headers[H_OFFSET] == str(item.record.offset)
    assert headers[H_STAGE] == "TASK_PUT"
    assert headers[H_EXCEPTION_CLASS_NAME] == "eventplatform.errors.Rejected"
    assert headers[H_EXCEPTION_MESSAGE] == "no such address"
    # The CloudEvents headers travel with it, so it can be replayed as it is.
    assert EventMetadata.from_headers(letter.headers).idempotency_key == item.idempotency_key


async def test_undecodable_records_are_dead_lettered_and_accepted(
    settings: Settings,
    registry: MemoryRegistry,
    topic: str,
    group: str,
    kafka_bootstrap_servers: str,
) -> None:
    async with job_queue(settings, registry, topic, group) as queue:
        await queue.put(Job(job_id="good-1"))
        ce_headers = [
            (name, value)
            for name, value in (await get_within(queue)).record.headers
            if value is not None
        ]
        raw = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap_servers)
        await raw.start()
        try:
            await raw.send_and_wait(topic, b"not avro at all")  # no CloudEvents headers
            await raw.send_and_wait(topic, b"garbage", headers=ce_headers)  # no framing
            unknown_id = b"\x00\x00\x0f\x42\x40" + b"\x02x"  # schema id 1000000
            await raw.send_and_wait(topic, unknown_id, headers=ce_headers)
        finally:
            await raw.stop()
        await queue.put(Job(job_id="good-2"))
        item = await get_within(queue)
        assert item.event.job_id == "good-2"
        await item.task_done()
        letters = await read_topic(kafka_bootstrap_servers, f"{topic}.dlq", expected=3)
        await queue.put(Job(job_id="marker"))
        assert (await get_within(queue)).event.job_id == "marker"
        # Accepted after dead-lettering: none was delivered (and dead-lettered) again.
        assert (
            len(await read_topic(kafka_bootstrap_servers, f"{topic}.dlq", expected=4, within=2))
            == 3
        )
    # A record without CloudEvents headers is read like any Confluent producer's (metadata
    # derived from the record), so all three fail at their value.
    stages = [headers_of(letter)[H_STAGE] for letter in letters]
    assert stages == ["VALUE_CONVERTER", "VALUE_CONVERTER", "VALUE_CONVERTER"]
    classes = [headers_of(letter)[H_EXCEPTION_CLASS_NAME] for letter in letters]
    assert classes == [
        "eventplatform.errors.NotWireFormat",
        "eventplatform.errors.NotWireFormat",
        "eventplatform.errors.UnknownSchemaId",
    ]


async def test_join_waits_until_every_item_is_settled(
    settings: Settings, registry: MemoryRegistry, topic: str, group: str
) -> None:
    async with job_queue(settings, registry, topic, group) as queue:
        await queue.put_batch([Job(job_id=str(n)) for n in range(5)])
        items = []
        while len(items) < 5:
            items += await queue.get_batch(5 - len(items), timeout=20)
        joined = asyncio.create_task(queue.join())
        for item in items[:4]:
            await item.task_done()
        for _ in range(20):  # let every ready callback run; join must still wait for one
            await asyncio.sleep(0)
        assert not joined.done()
        assert queue.unfinished == 1
        await items[4].task_done()
        await asyncio.wait_for(joined, timeout=10)
        assert queue.consumer.failed_acknowledgements == 0


async def test_leaving_the_context_releases_unsettled_items(
    settings: Settings, registry: MemoryRegistry, topic: str, group: str
) -> None:
    async with job_queue(settings, registry, topic, group, prefetch=10) as leaving:
        await leaving.put_batch([Job(job_id=str(n)) for n in range(3)])
        taken = []
        while len(taken) < 3:
            taken += await leaving.get_batch(3, timeout=20)
        await taken[0].task_done()
        # taken[1] and taken[2] are left unsettled
    async with job_queue(settings, registry, topic, group) as staying:
        started = time.monotonic()
        back = [await get_within(staying), await get_within(staying)]
        # Well before the 30 s lock could have expired: they were released on exit.
        assert time.monotonic() - started < 15
        assert sorted(item.event.job_id for item in back) == ["1", "2"]
        assert [item.delivery_count for item in back] == [2, 2]
        for item in back:
            await item.task_done()
        await staying.join()


async def test_a_busy_get_loop_does_not_block_the_event_loop(
    settings: Settings, registry: MemoryRegistry, topic: str, group: str
) -> None:
    # A ticker measures, per tick, how long the loop ran other code before it could run
    # again. On a busy shared machine the process may also be descheduled, which stretches
    # the wall-clock lag without anything blocking; the thread's CPU time over the same
    # interval counts only what this thread executed, so it is what the condition is about.
    total = 3000
    async with job_queue(settings, registry, topic, group, prefetch=200) as queue:
        await queue.put_batch([Job(job_id=str(n), size=n) for n in range(total)])
        busy: list[float] = []
        wall: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                before, cpu = loop.time(), time.thread_time()
                await asyncio.sleep(0.005)
                lag = loop.time() - before - 0.005
                wall.append(lag)
                busy.append(min(lag, time.thread_time() - cpu))

        probe = asyncio.create_task(ticker())
        handled = 0
        while handled < total:
            for item in await queue.get_batch(200, timeout=20):
                await item.task_done()
                handled += 1
        await queue.join()
        stop.set()
        await probe
    assert len(busy) > 10
    assert max(busy) < 0.1, (
        f"the event loop ran {max(busy) * 1000:.0f} ms without yielding "
        f"(wall-clock lag {max(wall) * 1000:.0f} ms)"
    )
