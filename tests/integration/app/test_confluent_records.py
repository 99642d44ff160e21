"""Records from a stock Confluent producer (no CloudEvents headers) are handled like ours.

confluent-kafka's ``Producer`` and ``AvroSerializer`` register through our registry's REST
server and write plain Confluent-framed Avro; the app reads the registry through the same
server. Effects go through the inbox (SQLite store), into a table without a unique key, so a
key applied twice would show as two rows.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio

from eventplatform.app import Context, EventApp, IdempotencyKey
from eventplatform.cloudevents import EventMetadata, record_event_id
from eventplatform.idempotency import SqliteStore
from eventplatform.registry import MemoryRegistry
from eventplatform.registry.rest_client import RestRegistry
from eventplatform.settings import Settings
from tests.integration.app.confluent import produce, registry_server
from tests.integration.app.events import OrderPlaced
from tests.integration.app.helpers import eventually, headers_of, read_all, running

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def registry_url(registry: MemoryRegistry) -> AsyncIterator[str]:
    """Our registry, served over Confluent's REST API on a loopback port."""
    async with registry_server(registry) as url:
        yield url


def effects_db(path: Path) -> Path:
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE effects (idempotency_key TEXT, order_id TEXT)")
    setup.close()
    return path


def effects_per_key(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as check:
        rows = check.execute("SELECT idempotency_key, count(*) FROM effects GROUP BY 1").fetchall()
    check.close()
    return dict(rows)


async def test_confluent_records_have_effects_once_per_kafka_key_across_a_restart(
    settings: Settings,
    registry_url: str,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Awaitable[str]],
    group: str,
    kafka_bootstrap_servers: str,
    tmp_path: Path,
) -> None:
    topic = await create_topic(unique_topic("orders"), partitions=2)
    path = effects_db(tmp_path / "service.db")
    seen: list[tuple[EventMetadata, int, int]] = []

    def make_app(registry: RestRegistry) -> EventApp:
        app = EventApp(
            "confluent",
            group_id=group,
            registry=registry,
            settings=settings,
            store=SqliteStore(path=path),
        )

        @app.handle(OrderPlaced, topic=topic, idempotency_key=IdempotencyKey.kafka_key())
        async def record(event: OrderPlaced, ctx: Context) -> None:
            await ctx.transaction.execute(
                "INSERT INTO effects VALUES (?, ?)", ctx.idempotency_key, event.order_id
            )
            seen.append((ctx.metadata, ctx.partition, ctx.offset))

        return app

    # Every key twice, the copies apart (a producer's retry, a replayed export).
    first = [(f"o{i}".encode(), {"order_id": f"o{i}", "amount": i}, ()) for i in range(6)]
    before = datetime.now(UTC).replace(microsecond=0)
    await produce(kafka_bootstrap_servers, registry_url, topic, first + first)
    after = datetime.now(UTC)

    async with RestRegistry(registry_url) as rest:  # the app reads the registry over REST too
        app = make_app(rest)
        async with running(app):
            await eventually(lambda: app.stats.handled + app.stats.skipped_duplicates == 12)
        assert app.stats.handled == 6
        assert app.stats.skipped_duplicates == 6
        assert app.stats.dead_lettered == 0

        # A fresh instance after a restart: o3-o5 again, and new keys o6-o8.
        second = [(f"o{i}".encode(), {"order_id": f"o{i}", "amount": i}, ()) for i in range(3, 9)]
        await produce(kafka_bootstrap_servers, registry_url, topic, second)
        again = make_app(rest)
        async with running(again):
            await eventually(lambda: again.stats.handled + again.stats.skipped_duplicates == 6)
        assert again.stats.handled == 3

    assert effects_per_key(path) == {f"o{i}": 1 for i in range(9)}
    meta, partition, offset = seen[0]
    assert meta.derived
    assert meta.type == "com.example.orders.OrderPlaced"
    assert meta.source == f"/topics/{topic}"
    assert before <= meta.time <= after
    stamp = round(meta.time.timestamp() * 1000)
    assert meta.id == record_event_id(topic, partition, offset, stamp)
    assert len({m.id for m, _, _ in seen}) == len(seen)


async def test_field_and_header_keys_and_a_configured_source(
    settings: Settings,
    registry: MemoryRegistry,
    registry_url: str,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Awaitable[str]],
    group: str,
    kafka_bootstrap_servers: str,
) -> None:
    by_field = await create_topic(unique_topic("by-field"))
    by_header = await create_topic(unique_topic("by-header"))
    consumer = settings.consumer.model_copy(update={"topic_sources": {by_field: "/legacy/shop"}})
    app = EventApp(
        "keys",
        group_id=group,
        registry=registry,
        settings=settings.model_copy(update={"consumer": consumer}),
    )
    effects: Counter[tuple[str, str]] = Counter()
    sources: set[tuple[str, str]] = set()

    @app.handle(OrderPlaced, topic=by_field, idempotency_key=IdempotencyKey.field("order_id"))
    async def on_field(event: OrderPlaced, ctx: Context) -> None:
        effects[(ctx.topic, ctx.idempotency_key)] += 1
        sources.add((ctx.topic, ctx.metadata.source))

    @app.handle(OrderPlaced, topic=by_header, idempotency_key=IdempotencyKey.header("x-request-id"))
    async def on_header(event: OrderPlaced, ctx: Context) -> None:
        effects[(ctx.topic, ctx.idempotency_key)] += 1
        sources.add((ctx.topic, ctx.metadata.source))

    # Same order id under different Kafka keys; same request id on different orders.
    rows_field = [(f"k{n}".encode(), {"order_id": f"o{n % 3}"}, ()) for n in range(6)]
    rows_header = [
        (None, {"order_id": f"o{n}"}, [("x-request-id", f"r{n % 2}".encode())]) for n in range(4)
    ]
    await produce(kafka_bootstrap_servers, registry_url, by_field, rows_field)
    await produce(kafka_bootstrap_servers, registry_url, by_header, rows_header)

    async with running(app):
        await eventually(lambda: app.stats.handled + app.stats.skipped_duplicates == 10)

    assert effects == {
        **{(by_field, f"o{n}"): 1 for n in range(3)},
        **{(by_header, f"r{n}"): 1 for n in range(2)},
    }
    assert sources == {(by_field, "/legacy/shop"), (by_header, f"/topics/{by_header}")}


async def test_malformed_cloudevents_headers_are_dead_lettered_and_tombstones_skipped(
    settings: Settings,
    registry: MemoryRegistry,
    registry_url: str,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Awaitable[str]],
    group: str,
    kafka_bootstrap_servers: str,
) -> None:
    topic = await create_topic(unique_topic("orders"))
    app = EventApp("malformed", group_id=group, registry=registry, settings=settings)
    handled: list[str] = []

    @app.handle(OrderPlaced, topic=topic)
    async def on_order(event: OrderPlaced, ctx: Context) -> None:
        handled.append(event.order_id)

    partial = [("ce_id", b"abc"), ("ce_type", b"com.example.orders.OrderPlaced")]
    await produce(
        kafka_bootstrap_servers,
        registry_url,
        topic,
        [
            (b"k", {"order_id": "partial"}, partial),
            (b"k", {"order_id": "bare"}, ()),
            (b"k", None, ()),  # a tombstone, as Debezium writes after a delete: skipped
        ],
    )
    async with running(app):
        await eventually(
            lambda: app.stats.handled + app.stats.dead_lettered + app.stats.unhandled == 3
        )
    assert (app.stats.handled, app.stats.dead_lettered, app.stats.unhandled) == (1, 1, 1)
    assert handled == ["bare"]
    (letter,) = await read_all(kafka_bootstrap_servers, f"{topic}.dlq", expected=1)
    headers = headers_of(letter)
    assert headers["__connect.errors.stage"] == "HEADER_CONVERTER"
    assert headers["__connect.errors.offset"] == "0"
    assert "missing CloudEvents header 'ce_source'" in headers["__connect.errors.exception.message"]
