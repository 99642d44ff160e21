"""The ingress refuses, with 422 and the field path, an event no consumer could decode."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings
from tests.integration.connectors.builtin.ingress.test_ingress import SECRET, _post, ingress, signed
from tests.integration.connectors.helpers import TopicReader, order_json


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_timestamp_before_year_one_in_utc_is_answered_422_and_nothing_is_written(
    settings: Settings,
    registry: MemoryRegistry,
    reader: TopicReader,
    http: aiohttp.ClientSession,
    unique_topic: Callable[[str], str],
) -> None:
    # Issue 10: this was answered 202 and every consumer dead-lettered the record.
    topic = unique_topic("orders")
    body = json.dumps(order_json(1, placed_at="0001-01-01T00:47:14.930+06:17")).encode()
    async with ingress(settings, registry, topic) as connector:
        status, problem = await _post(http, connector.url, body, signed(body, "early", SECRET))
    assert status == 422, problem
    [error] = problem["errors"]
    assert error["path"] == "$.placed_at", problem
    assert "in UTC years 0001-9999" in error["reason"], problem
    assert await reader.end_offset(topic) == 0
