"""Rebalances: partitions move between members without losing or repeating effects."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

from eventplatform.app import Context, EventApp
from eventplatform.idempotency import SqliteStore
from eventplatform.producer import EventProducer, Outgoing
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings
from tests.integration.app.events import OrderPlaced
from tests.integration.app.helpers import eventually, running


def _effects(path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT order_id, count(*) FROM effects GROUP BY order_id ORDER BY order_id"
        ).fetchall()
    conn.close()
    return [(str(order), int(n)) for order, n in rows]


async def test_a_member_joining_and_one_leaving_mid_stream_apply_each_event_once(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Awaitable[str]],
    group: str,
    tmp_path: Path,
) -> None:
    topic = await create_topic(unique_topic("orders"), partitions=4)
    database = tmp_path / "shared.db"
    with sqlite3.connect(database) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE effects (order_id TEXT, member TEXT)")
    setup.close()
    count = 300
    small_polls = settings.model_copy(
        update={"consumer": settings.consumer.model_copy(update={"max_poll_records": 20})}
    )

    def member(name: str) -> EventApp:
        app = EventApp(
            name,
            group_id=group,
            registry=registry,
            settings=small_polls,
            store=SqliteStore(path=database),
        )

        @app.handle(OrderPlaced, topic=topic)
        async def record(event: OrderPlaced, ctx: Context) -> None:
            await asyncio.sleep(0.002)
            await ctx.transaction.execute("INSERT INTO effects VALUES (?, ?)", event.order_id, name)

        return app

    async def publish(numbers: range) -> None:
        await producer.publish_batch(
            [Outgoing(OrderPlaced(order_id=f"o{i:03}"), key=f"k{i}", topic=topic) for i in numbers]
        )

    first, second = member("first"), member("second")
    async with running(first):
        await publish(range(100))
        await eventually(lambda: first.stats.handled >= 50)
        async with running(second):
            # Both members hold partitions now: the first committed what it had on revoke.
            await eventually(lambda: first.stats.rebalances >= 2 and second.stats.rebalances >= 1)
            await publish(range(100, 200))
            await eventually(lambda: second.stats.handled > 0 and len(_effects(database)) >= 150)
        # `second` left gracefully (committed, LeaveGroup); `first` takes its partitions back.
        await publish(range(200, count))
        await eventually(lambda: len(_effects(database)) == count, within=30)

    assert _effects(database) == [(f"o{i:03}", 1) for i in range(count)]
    assert first.stats.rebalances >= 3  # joined, second joined, second left
    assert first.stats.handled + second.stats.handled == count
