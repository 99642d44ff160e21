"""Helpers of the EventApp tests: run an app in a task, wait for a condition, read a topic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer

from eventplatform.app import EventApp


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
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


async def read_all(
    bootstrap_servers: str,
    topic: str,
    *,
    expected: int,
    isolation_level: str = "read_committed",
    within: float = 15.0,
    settle: float = 0.0,
) -> list[Any]:
    """Every record of ``topic`` from the start, once ``expected`` arrived (then ``settle`` s)."""
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
        end = time.monotonic() + settle
        while time.monotonic() < end:
            batch = await consumer.getmany(timeout_ms=100)
            records += [r for rs in batch.values() for r in rs]
    finally:
        await consumer.stop()
    return records


def headers_of(record: Any) -> dict[str, str]:
    """A record's headers as text (the last value of each name)."""
    return {name: (value or b"").decode(errors="replace") for name, value in record.headers}
