"""Fixtures of the EventApp tests: settings, a registry, a producer, a consumer group.

Every test gets its own topics (``unique_topic``), its own consumer group and an in-memory
schema registry shared by the test's producer and app. Settings keep backoffs and timeouts
short so that retries, timeouts and dead-lettering take milliseconds.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from eventplatform.producer import EventProducer
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings, load_settings


@pytest.fixture
def settings(kafka_bootstrap_servers: str) -> Settings:
    """Fast settings: short backoffs, 5 s handler timeout, 3 attempts, memory store."""
    return load_settings(
        kafka={"bootstrap_servers": kafka_bootstrap_servers},
        # Several event types share a topic: one subject per type and topic.
        registry={"subject_strategy": "topic_record"},
        consumer={
            "handler_timeout": 5.0,
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 1000,
            "retry": {"max_attempts": 3, "initial_backoff": 0.01, "max_backoff": 0.05},
        },
        producer={"linger_ms": 1},
        idempotency={"store": "memory://"},
    )


@pytest_asyncio.fixture
async def registry() -> AsyncIterator[MemoryRegistry]:
    """A schema registry shared by the test's producer and apps."""
    async with MemoryRegistry() as shared:
        yield shared


@pytest_asyncio.fixture
async def producer(settings: Settings, registry: MemoryRegistry) -> AsyncIterator[EventProducer]:
    """A started producer on the test's registry."""
    async with EventProducer(registry=registry, settings=settings, source="/tests") as started:
        yield started


@pytest.fixture
def group() -> str:
    """A consumer group no other test uses."""
    return f"test-group-{uuid.uuid4().hex[:8]}"
