"""Ordering: events of one key in order; different keys concurrently, up to a limit."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable

from eventplatform.app import Context, EventApp
from eventplatform.producer import EventProducer, Outgoing
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings
from tests.integration.app.events import OrderPlaced
from tests.integration.app.helpers import eventually, running


async def test_events_of_one_key_run_in_order_while_keys_run_concurrently(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Awaitable[str]],
    group: str,
) -> None:
    topic = await create_topic(unique_topic("orders"), partitions=1)
    keys, per_key = 6, 15
    seen: dict[str, list[int]] = defaultdict(list)
    running_now = 0
    most_at_once = 0
    app = EventApp(
        "ordering",
        group_id=group,
        registry=registry,
        settings=settings.model_copy(
            update={"consumer": settings.consumer.model_copy(update={"max_concurrency": 4})}
        ),
    )

    @app.handle(OrderPlaced, topic=topic)
    async def handle(event: OrderPlaced, ctx: Context) -> None:
        nonlocal running_now, most_at_once
        running_now += 1
        most_at_once = max(most_at_once, running_now)
        try:
            await asyncio.sleep(random.uniform(0, 0.01))
            assert ctx.key is not None
            seen[ctx.key.decode()].append(event.amount)
        finally:
            running_now -= 1

    # Interleaved keys in one partition: k0:0, k1:0, …, k5:0, k0:1, …
    await producer.publish_batch(
        [
            Outgoing(OrderPlaced(order_id=f"k{k}-{n}", amount=n), key=f"k{k}", topic=topic)
            for n in range(per_key)
            for k in range(keys)
        ]
    )
    async with running(app):
        await eventually(lambda: app.stats.handled == keys * per_key)

    assert dict(seen) == {f"k{k}": list(range(per_key)) for k in range(keys)}
    assert 1 < most_at_once <= 4


async def test_events_without_kafka_key_are_ordered_by_idempotency_key(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Awaitable[str]],
    group: str,
) -> None:
    topic = await create_topic(unique_topic("orders"), partitions=1)
    order: list[int] = []
    app = EventApp("unkeyed", group_id=group, registry=registry, settings=settings)

    @app.handle(OrderPlaced, topic=topic)
    async def handle(event: OrderPlaced, ctx: Context) -> None:
        await asyncio.sleep(0.02 if event.amount == 0 else 0)
        order.append(event.amount)

    # Same idempotency key, no Kafka key: the duplicate waits for its first copy.
    await producer.publish_batch(
        [
            Outgoing(OrderPlaced(order_id="x", amount=n), topic=topic, idempotency_key="same")
            for n in range(2)
        ]
    )
    async with running(app):
        await eventually(lambda: app.stats.handled + app.stats.skipped_duplicates == 2)
    assert order == [0]
    assert app.stats.skipped_duplicates == 1
