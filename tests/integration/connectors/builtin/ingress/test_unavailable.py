"""The webhook ingress while its Kafka broker is down: 503 with Retry-After, then recovery.

This test runs a broker of its own (halted and resumed), not the session's shared one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from eventplatform.connectors.builtin.ingress.connector import WebhookIngress
from eventplatform.devkafka.local import LocalKafka
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings, load_settings
from tests.integration.connectors.helpers import Order, order_json, wait_running

API_KEY = "unavailable-test"
HEADERS = {"X-API-Key": API_KEY, "content-type": "application/json"}

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def broker() -> Iterator[LocalKafka]:
    with LocalKafka(version=load_settings().devkafka.version, heap="256m") as kafka:
        yield kafka


@pytest.fixture
def own_settings(broker: LocalKafka) -> Settings:
    return load_settings(
        kafka={"bootstrap_servers": broker.bootstrap_servers},
        producer={"linger_ms": 1, "delivery_timeout": 30},
    )


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(http: aiohttp.ClientSession, url: str, n: int) -> tuple[int, str | None]:
    body = json.dumps(order_json(n)).encode()
    async with http.post(url, data=body, headers=HEADERS) as response:
        return response.status, response.headers.get("Retry-After")


async def test_kafka_down_answers_503_with_retry_after_and_recovers(
    broker: LocalKafka, own_settings: Settings, http: aiohttp.ClientSession
) -> None:
    async with MemoryRegistry() as registry:
        connector = WebhookIngress(
            name="orders-in",
            topic="orders",
            event_type=Order,
            config={"port": 0, "api_keys": [API_KEY], "publish_timeout": 2, "retry_after": 2},
            settings=own_settings,
            registry=registry,
        )
        task = asyncio.create_task(connector.run())
        await wait_running(connector, task)
        try:
            assert await post(http, connector.url, 1) == (202, None)

            await asyncio.to_thread(broker.halt, kill=True)
            assert await post(http, connector.url, 2) == (503, "2")
            # Right after a failure, requests are refused at once instead of waiting.
            started = asyncio.get_running_loop().time()
            assert await post(http, connector.url, 3) == (503, "2")
            assert asyncio.get_running_loop().time() - started < 0.5

            await asyncio.to_thread(broker.resume)
            status = 503
            for n in range(4, 60):
                status, _ = await post(http, connector.url, n)
                if status == 202:
                    break
                await asyncio.sleep(0.5)
            assert status == 202
            assert connector.stats.counters["http_503"] >= 2
        finally:
            connector.stop()
            await task
