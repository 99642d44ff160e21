"""Dispatch: one handler per event type and topic, several topics per app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from eventplatform.app import Context, EventApp
from eventplatform.producer import EventProducer, Outgoing
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings
from tests.integration.app.events import OrderCancelled, OrderPlaced, OrderShipped
from tests.integration.app.helpers import end_offset, eventually, running


async def test_records_of_one_topic_go_to_the_handler_of_their_type(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Awaitable[str]],
    group: str,
    kafka_bootstrap_servers: str,
) -> None:
    topic = await create_topic(unique_topic("orders"), partitions=2)
    placed: list[str] = []
    cancelled: list[str] = []
    app = EventApp("dispatch", group_id=group, registry=registry, settings=settings)

    @app.handle(OrderPlaced, topic=topic)
    async def on_placed(event: OrderPlaced, ctx: Context) -> None:
        assert ctx.metadata.type == "com.example.orders.OrderPlaced"
        placed.append(event.order_id)

    @app.handle(OrderCancelled, topic=topic)
    async def on_cancelled(event: OrderCancelled, ctx: Context) -> None:
        cancelled.append(event.order_id)

    await producer.publish_batch(
        [Outgoing(OrderPlaced(order_id=f"p{i}"), key=f"k{i}", topic=topic) for i in range(5)]
        + [Outgoing(OrderCancelled(order_id=f"c{i}"), key=f"k{i}", topic=topic) for i in range(3)]
        + [Outgoing(OrderShipped(order_id="s0"), key="k0", topic=topic)]
    )
    async with running(app):
        await eventually(lambda: app.stats.handled == 8 and app.stats.unhandled == 1)

    assert sorted(placed) == [f"p{i}" for i in range(5)]
    assert sorted(cancelled) == [f"c{i}" for i in range(3)]
    # A type without a handler is skipped, not dead-lettered.
    assert app.stats.dead_lettered == 0
    # The app has stopped, so anything it dead-lettered is written: the topic holds nothing.
    assert await end_offset(kafka_bootstrap_servers, f"{topic}.dlq") == 0


async def test_one_app_consumes_several_topics(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    group: str,
) -> None:
    first, second = unique_topic("first"), unique_topic("second")
    seen: list[tuple[str, str]] = []
    app = EventApp("topics", group_id=group, registry=registry, settings=settings)

    @app.handle(OrderPlaced, topic=first)
    async def on_first(event: OrderPlaced, ctx: Context) -> None:
        seen.append((ctx.topic, event.order_id))

    @app.handle(OrderPlaced, topic=second)
    async def on_second(event: OrderPlaced, ctx: Context) -> None:
        seen.append((ctx.topic, event.order_id))

    await producer.publish(OrderPlaced(order_id="a"), topic=first)
    await producer.publish(OrderPlaced(order_id="b"), topic=second)
    async with running(app):
        await eventually(lambda: len(seen) == 2)
    assert sorted(seen) == [(first, "a"), (second, "b")]
    assert app.topics == [first, second]
