"""JSON-lines file sink against the real broker: lines, durability and no duplicates."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from eventplatform.connectors.builtin.files.sink import FileSink
from eventplatform.connectors.sdk.payloads import parse_event
from eventplatform.producer import EventProducer
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings, load_settings
from tests.integration.connectors.helpers import Order, Tick, eventually, order_json, running

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def producer(settings: Settings, registry: MemoryRegistry) -> AsyncIterator[EventProducer]:
    async with EventProducer(settings=settings, registry=registry) as started:
        yield started


def sink(
    settings: Settings,
    registry: MemoryRegistry,
    topic: str,
    path: Path,
    event_type: type[Any] = Tick,
    **config: Any,
) -> FileSink:
    return FileSink(
        name=f"file-{uuid.uuid4().hex[:8]}",
        topic=topic,
        event_type=event_type,
        config={"path": str(path), **config},
        settings=settings,
        registry=registry,
    )


def lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_events_become_cloudevents_json_lines(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    tmp_path: Path,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Any],
) -> None:
    topic = await create_topic(unique_topic("orders"))
    path = tmp_path / "out" / "orders.jsonl"
    orders = [parse_event(Order, json.dumps(order_json(n))) for n in (1, 2)]
    results = [
        await producer.publish(order, topic=topic, subject=f"order-{n}")
        for n, order in enumerate(orders, 1)
    ]
    connector = sink(settings, registry, topic, path, Order)
    async with running(connector):
        await eventually(lambda: _has(path, 2))
    first, second = lines(path)
    assert first["specversion"] == "1.0"
    assert first["id"] == results[0].event_id
    assert first["idempotencykey"] == results[0].idempotency_key
    assert first["type"] == "tests.connectors.Order"
    assert first["source"] == "/eventplatform"
    assert first["subject"] == "order-1"
    assert first["time"].endswith("Z")
    assert first["datacontenttype"] == "application/json"
    assert (first["kafkatopic"], first["kafkapartition"], first["kafkaoffset"]) == (topic, 0, 0)
    assert second["kafkaoffset"] == 1
    # The data reads back into the event it was written from.
    assert parse_event(Order, json.dumps(first["data"])) == orders[0]
    assert first["data"]["total"] == order_json(1)["total"]
    assert connector.stats.records == 2


async def test_a_redelivery_after_a_restart_writes_no_duplicates(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    tmp_path: Path,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Any],
) -> None:
    topic = await create_topic(unique_topic("ticks"), partitions=2)
    path = tmp_path / "ticks.jsonl"
    for n in range(1, 6):
        await producer.publish(Tick(n=n), topic=topic, key=str(n))
    async with running(sink(settings, registry, topic, path)):
        await eventually(lambda: _has(path, 5))
    for n in range(6, 9):
        await producer.publish(Tick(n=n), topic=topic, key=str(n))
    # A new consumer group with a memory store: every event is delivered again, as after a
    # crash that lost all offsets and keys. The file's last keys keep it from duplicating.
    again = sink(settings, registry, topic, path)
    async with running(again):
        await eventually(lambda: _has(path, 8))
        await eventually(lambda: _counted(again, "duplicates", 5))
    written = lines(path)
    assert sorted(line["data"]["n"] for line in written) == list(range(1, 9))
    assert len({line["idempotencykey"] for line in written}) == 8


async def test_a_line_cut_short_by_a_crash_is_removed_at_start(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    tmp_path: Path,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Any],
) -> None:
    topic = await create_topic(unique_topic("ticks"))
    path = tmp_path / "ticks.jsonl"
    whole = json.dumps({"idempotencykey": "earlier", "data": {"n": 0}}) + "\n"
    path.write_text(whole + '{"idempotencykey": "torn", "da')
    await producer.publish(Tick(n=1), topic=topic)
    async with running(sink(settings, registry, topic, path, fsync=False, linger=0.01)):
        await eventually(lambda: _has(path, 2))
    text = path.read_text()
    assert text.startswith(whole)
    assert "torn" not in text
    assert [line["data"]["n"] for line in lines(path)] == [0, 1]


async def _has(path: Path, count: int) -> bool:
    return len(lines(path)) >= count


async def _counted(connector: FileSink, counter: str, expected: int) -> bool:
    return connector.stats.counters.get(counter, 0) >= expected


def test_the_tail_window_holds_the_keys_of_the_last_lines(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("w") as out:
        for n in range(30_000):  # several 64 KiB chunks
            out.write(json.dumps({"idempotencykey": f"k{n}", "data": {"n": n}}) + "\n")
        out.write("not json, not ours\n")
    settings = load_settings(kafka={"bootstrap_servers": "127.0.0.1:9"})
    windowed = sink(settings, MemoryRegistry(), "t", path, dedup_window=1000)
    fd = windowed._open_file()
    try:
        keys = windowed._tail_keys(fd)
        assert keys == [f"k{n}" for n in range(29_001, 30_000)]  # the foreign line counts
        none = sink(settings, MemoryRegistry(), "t", path, dedup_window=0)
        assert none._tail_keys(fd) == []
    finally:
        os.close(fd)
