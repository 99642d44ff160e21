"""Lifecycle: graceful stop finishes in-flight events, commits, and leaves the group."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from eventplatform.app import Context, EventApp
from eventplatform.errors import ResourceStateError
from eventplatform.producer import EventProducer
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings
from tests.integration.app.events import OrderPlaced
from tests.integration.app.helpers import eventually


async def _group_state(admin: AIOKafkaAdminClient, group: str) -> tuple[str, int]:
    [response] = await admin.describe_consumer_groups([group])
    description: Any = response.groups[0]
    state, members = description[2], description[5]
    return state, len(members)


async def test_stop_lets_the_event_in_flight_finish_commits_and_leaves_the_group(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    group: str,
    kafka_admin: AIOKafkaAdminClient,
) -> None:
    topic = unique_topic("orders")
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []
    app = EventApp("graceful", group_id=group, registry=registry, settings=settings)

    @app.handle(OrderPlaced, topic=topic)
    async def handle(event: OrderPlaced, ctx: Context) -> None:
        started.set()
        await asyncio.wait_for(release.wait(), 15)  # in flight until the stop was asked for
        finished.append(event.order_id)

    await producer.publish(OrderPlaced(order_id="slow"), topic=topic)
    task = asyncio.create_task(app.run())  # run() starts the app and closes it when it ends
    await asyncio.wait_for(started.wait(), 15)
    assert await _group_state(kafka_admin, group) == ("Stable", 1)
    app.stop()
    release.set()
    await asyncio.wait_for(task, 15)

    assert finished == ["slow"]
    assert app.stats.handled == 1
    assert app.stats.deferred == 0
    committed = await kafka_admin.list_consumer_group_offsets(group)
    assert [meta.offset for tp, meta in committed.items() if tp.topic == topic] == [1]
    # LeaveGroup was sent: the group is empty at once, not after the session timeout.
    assert await _group_state(kafka_admin, group) == ("Empty", 0)
    with pytest.raises(ResourceStateError):
        await app.run()


async def test_close_stops_a_running_app_and_handlers_cannot_be_added_after_start(
    settings: Settings,
    registry: MemoryRegistry,
    unique_topic: Callable[[str], str],
    group: str,
) -> None:
    app = EventApp("closing", group_id=group, registry=registry, settings=settings)

    @app.handle(OrderPlaced, topic=unique_topic("orders"))
    async def handle(event: OrderPlaced, ctx: Context) -> None:
        pass

    async with app:
        with pytest.raises(ResourceStateError):
            app.add_handler(OrderPlaced, handle, topic=unique_topic("other"))
        task = asyncio.create_task(app.run())
        await eventually(lambda: app.running)
        with pytest.raises(ResourceStateError):
            await app.run()
        await app.close()
        assert task.done()
        assert not app.running
    await task
