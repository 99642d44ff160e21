"""The inbox: a handler's writes commit with its idempotency key, or not at all."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from eventplatform.app import Context, EventApp
from eventplatform.errors import IdempotencyStoreError, StoreNotTransactional
from eventplatform.idempotency import PostgresStore, SqliteStore
from eventplatform.producer import EventProducer, Outgoing
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings
from tests.integration.app.events import OrderPlaced
from tests.integration.app.helpers import eventually, running


@pytest_asyncio.fixture
async def effects_table(postgres_dsn: str) -> AsyncIterator[str]:
    """A fresh effects table (no unique key, so a duplicate effect would show)."""
    name = f"effects_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(f"CREATE TABLE {name} (idempotency_key text, order_id text)")
        yield name
        await conn.execute(f"DROP TABLE {name}")
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_postgres_inbox_rolls_back_a_failed_attempt_and_applies_once(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    group: str,
    postgres_dsn: str,
    effects_table: str,
) -> None:
    topic = unique_topic("orders")
    store = PostgresStore(dsn=postgres_dsn, table=f"idem_{uuid.uuid4().hex[:8]}")
    app = EventApp("inbox-pg", group_id=group, registry=registry, settings=settings, store=store)

    @app.handle(OrderPlaced, topic=topic)
    async def record(event: OrderPlaced, ctx: Context) -> None:
        await ctx.transaction.execute(
            f"INSERT INTO {effects_table} VALUES ($1, $2)", ctx.idempotency_key, event.order_id
        )
        if event.amount == 1 and ctx.attempt == 1:
            raise RuntimeError("fails after writing: the write must be rolled back")
        connection = await ctx.connection()
        rows = await connection.fetchval(
            f"SELECT count(*) FROM {effects_table} WHERE idempotency_key = $1",
            ctx.idempotency_key,
        )
        assert rows == 1  # our own write, visible inside the batch's transaction

    await producer.publish_batch(
        [Outgoing(OrderPlaced(order_id=f"o{i}", amount=i % 3), topic=topic) for i in range(9)]
        # Two copies of one event: one idempotency key.
        + [
            Outgoing(OrderPlaced(order_id="o0"), topic=topic, idempotency_key="dup"),
            Outgoing(OrderPlaced(order_id="o0"), topic=topic, idempotency_key="dup"),
        ]
    )
    async with running(app):
        await eventually(lambda: app.stats.handled + app.stats.skipped_duplicates == 11)
    assert app.stats.retries == 3
    conn = await asyncpg.connect(postgres_dsn)
    try:
        rows = await conn.fetch(
            f"SELECT idempotency_key, count(*) AS n FROM {effects_table} GROUP BY 1"
        )
    finally:
        await conn.close()
    assert len(rows) == 10
    assert {row["n"] for row in rows} == {1}


async def test_sqlite_inbox_commits_the_handler_write_with_the_key(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    group: str,
    tmp_path: Path,
) -> None:
    topic = unique_topic("orders")
    path = tmp_path / "service.db"
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE effects (idempotency_key TEXT, order_id TEXT)")
    setup.close()
    app = EventApp(
        "inbox-sqlite",
        group_id=group,
        registry=registry,
        settings=settings,
        store=SqliteStore(path=path),
    )

    @app.handle(OrderPlaced, topic=topic)
    async def record(event: OrderPlaced, ctx: Context) -> None:
        await ctx.transaction.execute(
            "INSERT INTO effects VALUES (?, ?)", ctx.idempotency_key, event.order_id
        )
        if ctx.attempt == 1 and event.amount == 1:
            raise RuntimeError("rolled back, then retried")
        with pytest.raises(IdempotencyStoreError):
            await ctx.connection()  # SQLite's connection stays in its worker thread

    await producer.publish_batch(
        [Outgoing(OrderPlaced(order_id=f"o{i}", amount=i % 2), topic=topic) for i in range(6)]
    )
    async with running(app):
        await eventually(lambda: app.stats.handled == 6)

    with sqlite3.connect(path) as check:
        rows = check.execute(
            "SELECT order_id, count(*) FROM effects GROUP BY order_id ORDER BY order_id"
        ).fetchall()
        done = check.execute(
            "SELECT count(*) FROM eventplatform_idempotency WHERE done_at IS NOT NULL"
        ).fetchone()
    check.close()
    assert rows == [(f"o{i}", 1) for i in range(6)]
    assert done == (6,)


async def test_inbox_off_runs_keys_concurrently_without_a_store_transaction(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    group: str,
    tmp_path: Path,
) -> None:
    topic = unique_topic("orders")
    running_now = most = 0
    app = EventApp(
        "no-inbox",
        group_id=group,
        registry=registry,
        settings=settings,
        store=SqliteStore(path=tmp_path / "keys.db"),
        inbox=False,
    )

    @app.handle(OrderPlaced, topic=topic)
    async def handle(event: OrderPlaced, ctx: Context) -> None:
        nonlocal running_now, most
        with pytest.raises(StoreNotTransactional, match="inbox=False"):
            _ = ctx.transaction
        running_now += 1
        most = max(most, running_now)
        # Held until another handler runs beside it (a serial app times out here).
        await eventually(lambda: most > 1, what="a second handler running concurrently")
        running_now -= 1

    await producer.publish_batch(
        [Outgoing(OrderPlaced(order_id=f"o{i}"), key=f"k{i}", topic=topic) for i in range(8)]
    )
    async with running(app):
        await eventually(lambda: app.stats.handled == 8)
    assert most > 1
