"""Fixtures of the connector tests: fast settings, a shared registry, offsets, topic readers.

Every test gets its own topics (``unique_topic``) and its own offsets and status topics, so
tests sharing the session's broker never see each other's positions.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from eventplatform.connectors.runtime.offsets import OffsetStore
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings, load_settings
from tests.integration.connectors.helpers import TopicReader


@pytest.fixture
def settings(kafka_bootstrap_servers: str) -> Settings:
    """Settings on the test broker: 1 ms linger, memory idempotency store."""
    return load_settings(
        kafka={"bootstrap_servers": kafka_bootstrap_servers},
        producer={"linger_ms": 1, "delivery_timeout": 15},
        consumer={"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000},
        idempotency={"store": "memory://"},
    )


@pytest_asyncio.fixture
async def registry() -> AsyncIterator[MemoryRegistry]:
    """A schema registry shared by the test's connectors and readers."""
    async with MemoryRegistry() as shared:
        yield shared


@pytest.fixture
def offsets_topic(unique_topic: Callable[[str], str]) -> str:
    """An offsets topic of this test's own."""
    return unique_topic("offsets")


@pytest_asyncio.fixture
async def offsets(settings: Settings, offsets_topic: str) -> AsyncIterator[OffsetStore]:
    """A started offsets store on the test's own topic."""
    async with OffsetStore(topic=offsets_topic, settings=settings) as store:
        yield store


@pytest_asyncio.fixture
async def reader(
    kafka_bootstrap_servers: str, registry: MemoryRegistry
) -> AsyncIterator[TopicReader]:
    """Reads topics from the start, decoding Avro values with the test's registry."""
    async with TopicReader(kafka_bootstrap_servers, registry) as started:
        yield started


@pytest.fixture
def group() -> str:
    """A consumer group no other test uses."""
    return f"test-group-{uuid.uuid4().hex[:8]}"
