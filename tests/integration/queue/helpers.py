"""Helpers of the queue tests: build a queue, read a topic, wait with a deadline."""

from __future__ import annotations

import time
from typing import Any

from aiokafka import AIOKafkaConsumer

from eventplatform.queue import EventQueue, QueueItem
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings
from tests.integration.queue.events import Job
from tests.waiting import until


def job_queue(
    settings: Settings, registry: MemoryRegistry, topic: str, group: str, **options: Any
) -> EventQueue[Job]:
    """A queue of Jobs on ``topic`` for share group ``group``."""
    return EventQueue(
        Job, topic=topic, group=group, registry=registry, settings=settings, **options
    )


async def get_within(queue: EventQueue[Job], within: float = 20.0) -> QueueItem[Job]:
    """The next item; fail the test when none comes within ``within`` seconds."""
    items = await queue.get_batch(1, timeout=within)
    assert items, f"no item within {within}s"
    return items[0]


async def read_topic(
    bootstrap: str, topic: str, *, expected: int, within: float = 20.0
) -> list[Any]:
    """Every record of ``topic`` from the start, once ``expected`` of them arrived."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + within
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            records += [r for rs in batch.values() for r in rs]
    finally:
        await consumer.stop()
    return records


def headers_of(record: Any) -> dict[str, str]:
    """A record's headers as text."""
    return {name: (value or b"").decode(errors="replace") for name, value in record.headers}


async def eventually(predicate: Any, *, within: float = 20.0, what: str = "condition") -> None:
    """Wait until ``predicate()`` holds; fail after ``within`` seconds (the suite's one poll)."""
    await until(predicate, within=within, what=what)
