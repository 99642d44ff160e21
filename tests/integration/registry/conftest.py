"""The ``registry`` fixture: a started backend, once per entry of :data:`REGISTRY_FACTORIES`.

The contract suite (``contract.py``) runs against every backend listed here. To add one, add an
entry: a name and a function that takes the pytest request (to reach other fixtures, such as
``kafka_bootstrap_servers`` or ``unique_topic``, through ``request.getfixturevalue``) and returns
an async context manager yielding a *started* registry with an empty state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
import pytest_asyncio

from eventplatform.registry.base import SchemaRegistry
from eventplatform.registry.kafkalog import KafkaLogRegistry
from eventplatform.registry.memory import MemoryRegistry

RegistryFactory = Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[SchemaRegistry]]


@asynccontextmanager
async def memory_registry(request: pytest.FixtureRequest) -> AsyncIterator[SchemaRegistry]:
    """A :class:`MemoryRegistry`."""
    async with MemoryRegistry() as registry:
        yield registry


@asynccontextmanager
async def kafkalog_registry(request: pytest.FixtureRequest) -> AsyncIterator[SchemaRegistry]:
    """A :class:`KafkaLogRegistry` on the session's broker, with a log topic of its own."""
    servers: str = request.getfixturevalue("kafka_bootstrap_servers")
    topic: str = request.getfixturevalue("unique_topic")("schemas")
    async with KafkaLogRegistry(bootstrap_servers=servers, topic=topic) as registry:
        yield registry


@asynccontextmanager
async def rest_registry(request: pytest.FixtureRequest) -> AsyncIterator[SchemaRegistry]:
    """A :class:`RestRegistry` on the REST server (loopback, free port) over a Kafka-log one."""
    from eventplatform.registry.rest_client import RestRegistry
    from eventplatform.registry.rest_server import serve, server_url

    async with kafkalog_registry(request) as backend:
        runner = await serve(backend, "127.0.0.1", 0)
        try:
            async with RestRegistry(server_url(runner)) as registry:
                yield registry
        finally:
            await runner.cleanup()


REGISTRY_FACTORIES: dict[str, RegistryFactory] = {
    "memory": memory_registry,
    "kafkalog": kafkalog_registry,
    "rest": rest_registry,
}


@pytest_asyncio.fixture(params=list(REGISTRY_FACTORIES))
async def registry(request: pytest.FixtureRequest) -> AsyncIterator[SchemaRegistry]:
    """A started registry of each backend in :data:`REGISTRY_FACTORIES`."""
    async with REGISTRY_FACTORIES[request.param](request) as started:
        yield started
