"""Fixtures of the queue tests: settings, a shared registry, a topic and a share group each."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings, load_settings


@pytest.fixture
def settings(kafka_bootstrap_servers: str) -> Settings:
    """Settings on the test broker; short dead-letter backoffs."""
    return load_settings(
        kafka={"bootstrap_servers": kafka_bootstrap_servers},
        consumer={"retry": {"max_attempts": 3, "initial_backoff": 0.01, "max_backoff": 0.05}},
        producer={"linger_ms": 1},
    )


@pytest_asyncio.fixture
async def registry() -> AsyncIterator[MemoryRegistry]:
    """A schema registry shared by every queue of the test."""
    async with MemoryRegistry() as shared:
        yield shared


@pytest_asyncio.fixture
async def topic(
    unique_topic: Callable[[str], str], create_topic: Callable[..., Awaitable[str]]
) -> str:
    """A new one-partition topic (its dead-letter topic is created on first write)."""
    return await create_topic(unique_topic("jobs"), partitions=1)


@pytest.fixture
def group() -> str:
    """A share group no other test uses."""
    return f"test-queue-{uuid.uuid4().hex[:8]}"
