"""Duplicates: the same idempotency key twice has one effect, in one poll or across restarts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from eventplatform.app import Context, EventApp
from eventplatform.idempotency import MemoryStore, SqliteStore
from eventplatform.producer import EventProducer, Outgoing
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings
from tests.integration.app.events import OrderPlaced
from tests.integration.app.helpers import eventually, running


async def test_same_idempotency_key_twice_in_one_poll_has_one_effect(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    group: str,
) -> None:
    topic = unique_topic("orders")
    effects: Counter[str] = Counter()
    app = EventApp("dupes", group_id=group, registry=registry, settings=settings)

    @app.handle(OrderPlaced, topic=topic)
    async def handle(event: OrderPlaced, ctx: Context) -> None:
        effects[ctx.idempotency_key] += 1

    # Different Kafka keys (so possibly different chains), one idempotency key.
    await producer.publish_batch(
        [
            Outgoing(OrderPlaced(order_id="a"), key="k1", topic=topic, idempotency_key="once"),
            Outgoing(OrderPlaced(order_id="a"), key="k2", topic=topic, idempotency_key="once"),
            Outgoing(OrderPlaced(order_id="b"), key="k1", topic=topic),
        ]
    )
    async with running(app):
        await eventually(lambda: app.stats.handled + app.stats.skipped_duplicates == 3)
    assert effects["once"] == 1
    assert sum(effects.values()) == 2
    assert app.stats.skipped_duplicates == 1


async def test_a_key_done_before_a_restart_is_skipped_after_it(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    group: str,
    tmp_path: Path,
) -> None:
    topic = unique_topic("orders")
    effects: Counter[str] = Counter()

    def make_app(store: SqliteStore) -> EventApp:
        app = EventApp("restart", group_id=group, registry=registry, settings=settings, store=store)

        @app.handle(OrderPlaced, topic=topic)
        async def handle(event: OrderPlaced, ctx: Context) -> None:
            effects[event.order_id] += 1

        return app

    await producer.publish(OrderPlaced(order_id="first"), topic=topic, idempotency_key="key-1")
    first = make_app(SqliteStore(path=tmp_path / "keys.db"))
    async with running(first):
        await eventually(lambda: first.stats.handled == 1)

    # The same event again (a producer retry), and a new one; a fresh process and group member.
    await producer.publish(OrderPlaced(order_id="first"), topic=topic, idempotency_key="key-1")
    await producer.publish(OrderPlaced(order_id="second"), topic=topic, idempotency_key="key-2")
    second = make_app(SqliteStore(path=tmp_path / "keys.db"))
    async with running(second):
        await eventually(lambda: second.stats.handled + second.stats.skipped_duplicates == 2)
    assert effects == {"first": 1, "second": 1}
    assert second.stats.skipped_duplicates == 1


async def test_a_store_passed_in_started_stays_open_after_the_app(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    group: str,
) -> None:
    topic = unique_topic("orders")
    async with MemoryStore() as store:
        app = EventApp("owned", group_id=group, registry=registry, settings=settings, store=store)

        @app.handle(OrderPlaced, topic=topic)
        async def handle(event: OrderPlaced, ctx: Context) -> None:
            pass

        await producer.publish(OrderPlaced(order_id="x"), topic=topic, idempotency_key="k")
        async with running(app):
            await eventually(lambda: app.stats.handled == 1)
        assert store.started
        assert (await store.lookup(group, ["k"]))["k"].done
