"""RestRegistry against the REST server over real backends: what only the wire can break.

The registry contract itself runs for ``RestRegistry`` → server → Kafka-log backend in the
contract suite; these tests cover what lies between the two: error details crossing HTTP, the
registry or its backend going away, auth, awkward subject names and a path prefix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from eventplatform.errors import (
    IncompatibleSchema,
    RegistryError,
    RegistryUnavailable,
    SubjectNotFound,
)
from eventplatform.registry.base import CompatibilityLevel, SchemaRegistry
from eventplatform.registry.kafkalog import KafkaLogRegistry
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.registry.rest_client import RestRegistry
from eventplatform.registry.rest_server import create_app, serve, server_url

pytestmark = pytest.mark.integration

PLACED = (
    '{"type": "record", "name": "OrderPlaced", "namespace": "com.acme.orders",'
    ' "fields": [{"name": "order_id", "type": "string"}]}'
)
PLACED_WITH_AMOUNT = (
    '{"type": "record", "name": "OrderPlaced", "namespace": "com.acme.orders",'
    ' "fields": [{"name": "order_id", "type": "string"}, {"name": "amount", "type": "long"}]}'
)


@pytest_asyncio.fixture(params=["kafkalog", "memory"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[SchemaRegistry]:
    registry: SchemaRegistry
    if request.param == "kafkalog":
        registry = KafkaLogRegistry(
            bootstrap_servers=request.getfixturevalue("kafka_bootstrap_servers"),
            topic=request.getfixturevalue("unique_topic")("schemas"),
        )
    else:
        registry = MemoryRegistry()
    async with registry:
        yield registry


@pytest_asyncio.fixture
async def url(backend: SchemaRegistry) -> AsyncIterator[str]:
    runner = await serve(backend, "127.0.0.1", 0)
    try:
        yield server_url(runner)
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def client(url: str) -> AsyncIterator[RestRegistry]:
    async with RestRegistry(url, backoff=0.01, max_backoff=0.02) as registry:
        yield registry


async def test_incompatibilities_cross_the_wire_one_by_one(
    backend: SchemaRegistry, client: RestRegistry
) -> None:
    await client.register("orders-value", PLACED)
    expected = await backend.check_compatibility("orders-value", PLACED_WITH_AMOUNT)

    with pytest.raises(IncompatibleSchema) as info:
        await client.register("orders-value", PLACED_WITH_AMOUNT)

    assert not expected.is_compatible
    assert info.value.messages == expected.messages
    assert info.value.error_code == 409


async def test_compatibility_result_matches_the_backend(
    backend: SchemaRegistry, client: RestRegistry
) -> None:
    await client.register("orders-value", PLACED)

    over_http = await client.check_compatibility("orders-value", PLACED_WITH_AMOUNT)
    direct = await backend.check_compatibility("orders-value", PLACED_WITH_AMOUNT)

    assert over_http == direct
    assert (await client.check_compatibility("new-value", PLACED_WITH_AMOUNT)).is_compatible


async def test_subject_level_falls_back_to_global(client: RestRegistry) -> None:
    await client.set_compatibility(CompatibilityLevel.FORWARD)
    await client.set_compatibility(CompatibilityLevel.NONE, "orders-value")

    assert await client.get_compatibility("orders-value") is CompatibilityLevel.NONE
    assert await client.get_compatibility("other-value") is CompatibilityLevel.FORWARD
    assert await client.get_compatibility() is CompatibilityLevel.FORWARD


async def test_awkward_subject_names_round_trip(client: RestRegistry) -> None:
    subject = "team/orders value?v=1#x%"

    registered = await client.register(subject, PLACED)

    assert registered.subject == subject
    assert (await client.get_version(subject)).id == registered.id
    assert await client.list_subjects() == [subject]
    assert await client.delete_subject(subject) == [1]


async def test_backend_failure_reaches_the_client_as_unavailable(
    backend: SchemaRegistry, client: RestRegistry
) -> None:
    await backend.close()

    with pytest.raises(RegistryUnavailable) as info:
        await client.list_subjects()

    assert info.value.error_code == 50001
    assert info.value.retriable
    assert client.url in str(info.value)


async def test_stopped_server_is_unavailable_naming_its_url(backend: SchemaRegistry) -> None:
    runner = await serve(backend, "127.0.0.1", 0)
    url = server_url(runner)
    await runner.cleanup()

    async with RestRegistry(url, retries=1, backoff=0.01) as registry:
        with pytest.raises(RegistryUnavailable) as info:
            await registry.get_by_id(1)

    assert url in str(info.value)


async def test_basic_auth(backend: SchemaRegistry) -> None:
    runner = await serve(backend, "127.0.0.1", 0, username="svc", password="s3cret")
    url = server_url(runner)
    try:
        async with RestRegistry(url, username="svc", password="s3cret") as registry:
            assert (await registry.register("orders-value", PLACED)).version == 1
        async with RestRegistry(url, username="svc", password="wrong") as registry:
            with pytest.raises(RegistryError) as info:
                await registry.list_subjects()
        assert info.value.error_code == 401
        assert "s3cret" not in str(info.value)
    finally:
        await runner.cleanup()


async def test_path_prefix_like_apicurio_ccompat(backend: SchemaRegistry) -> None:
    root = web.Application()
    root.add_subapp("/apis/ccompat/v7", create_app(backend))
    runner = web.AppRunner(root)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        async with RestRegistry(f"{server_url(runner)}/apis/ccompat/v7") as registry:
            registered = await registry.register("orders-value", PLACED)
            assert (await registry.get_by_id(registered.id)).schema == registered.schema
            with pytest.raises(SubjectNotFound):
                await registry.list_versions("nobody-value")
    finally:
        await runner.cleanup()
