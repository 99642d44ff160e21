"""Helpers of the EventApp tests: run an app in a task, wait for a condition, read a topic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from eventplatform.app import EventApp
from tests.waiting import until


@asynccontextmanager
async def running(app: EventApp) -> AsyncIterator[EventApp]:
    """Start ``app``, run it in a task, and stop it (gracefully) on exit."""
    async with app:
        task = asyncio.create_task(app.run())
        try:
            yield app
        finally:
            app.stop()
            await task


async def eventually(
    predicate: Callable[[], bool], *, within: float = 15.0, what: str = "condition"
) -> None:
    """Wait until ``predicate()`` holds; fail the test after ``within`` seconds."""
    await until(predicate, within=within, what=what)


async def read_all(
    bootstrap_servers: str,
    topic: str,
    *,
    expected: int,
    isolation_level: str = "read_committed",
    within: float = 15.0,
    to_end: bool = False,
) -> list[Any]:
    """Every record of ``topic`` from the start, once ``expected`` arrived.

    With ``to_end``, also every record up to the end of each partition as it is once
    ``expected`` arrived (for ``read_committed``, the last stable offset): the positive
    marker that nothing written before is left unread, where a fixed wait would only guess.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        auto_offset_reset="earliest",
        isolation_level=isolation_level,
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + within
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            records += [r for rs in batch.values() for r in rs]
        if to_end:
            partitions = sorted(consumer.assignment())
            ends = await consumer.end_offsets(partitions)
            while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
                if time.monotonic() > deadline:
                    raise AssertionError(f"{topic}: not read to {ends} within {within}s")
                batch = await consumer.getmany(timeout_ms=200)
                records += [r for rs in batch.values() for r in rs]
    finally:
        await consumer.stop()
    return records


async def end_offset(bootstrap_servers: str, topic: str) -> int:
    """The sum of the end offsets of ``topic``'s partitions (0 for a topic that does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"]:
        return 0
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers)
    await probe.start()
    try:
        partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        return sum((await probe.end_offsets(partitions)).values())
    finally:
        await probe.stop()


def headers_of(record: Any) -> dict[str, str]:
    """A record's headers as text (the last value of each name)."""
    return {name: (value or b"").decode(errors="replace") for name, value in record.headers}
