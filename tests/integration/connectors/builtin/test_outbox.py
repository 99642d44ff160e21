"""The PostgreSQL outbox relay against real PostgreSQL and the real broker."""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from eventplatform.connectors import OffsetStore
from eventplatform.connectors.builtin.outbox import OutboxSource
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings
from tests.integration.connectors.helpers import Tick, TopicReader, eventually, running

pytestmark = pytest.mark.postgres


@pytest.fixture
def table() -> str:
    return f"outbox_{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def db(postgres_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        yield conn
    finally:
        await conn.close()


def outbox(
    name: str,
    table: str,
    postgres_dsn: str,
    settings: Settings,
    registry: MemoryRegistry,
    offsets: OffsetStore,
    prefix: str,
    cls: type[OutboxSource] = OutboxSource,
    **config: Any,
) -> OutboxSource:
    options: dict[str, Any] = {
        "dsn": postgres_dsn,
        "table": table,
        "channel": f"{table}_ch",
        "install": True,
        "topic_template": prefix + ".{aggregatetype}",
        "poll_interval": 0.2,
    }
    options.update(config)
    return cls(name=name, config=options, settings=settings, registry=registry, offsets=offsets)


async def insert(
    db: asyncpg.Connection, table: str, rows: list[tuple[str, str, str, Any]]
) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in rows]
    await db.executemany(
        f"INSERT INTO {table} (id, aggregatetype, aggregateid, type, payload) "
        "VALUES ($1, $2, $3, $4, $5::jsonb)",
        [(i, a, b, t, json.dumps(p)) for i, (a, b, t, p) in zip(ids, rows, strict=True)],
    )
    return ids


async def unpublished(db: asyncpg.Connection, table: str) -> int:
    return int(await db.fetchval(f"SELECT count(*) FROM {table} WHERE published_at IS NULL"))


async def test_rows_are_routed_keyed_typed_and_marked(
    db: asyncpg.Connection,
    table: str,
    postgres_dsn: str,
    settings: Settings,
    registry: MemoryRegistry,
    offsets: OffsetStore,
    reader: TopicReader,
    unique_topic: Callable[[str], str],
) -> None:
    prefix = unique_topic("outbox")
    ticks_topic = unique_topic("ticks")
    relay = outbox(
        "relay",
        table,
        postgres_dsn,
        settings,
        registry,
        offsets,
        prefix,
        routes={"tick": ticks_topic},
        event_types={"Tick": "tests.integration.connectors.helpers:Tick"},
    )
    async with running(relay):
        ids = await insert(
            db,
            table,
            [
                ("tick", "t-1", "Tick", {"n": 1, "label": "a"}),
                ("customer", "c-9", "CustomerRenamed", {"name": "Ada"}),
                ("tick", "t-1", "Tick", {"n": 2, "label": "b"}),
            ],
        )
        await eventually(lambda: _none_left(db, table))
    ticks = await reader.read(ticks_topic, 2)
    assert [(await reader.decode(r, Tick)).n for r in ticks] == [1, 2]
    assert [r.headers["ce_id"] for r in ticks] == [str(ids[0]), str(ids[2])]
    assert {r.key for r in ticks} == {b"t-1"}
    assert ticks[0].headers["ce_subject"] == "t-1"
    assert ticks[0].headers["ce_type"] == "tests.connectors.Tick"
    (customer,) = await reader.read(f"{prefix}.customer", 1)
    assert json.loads(customer.value) == {"name": "Ada"}
    assert customer.headers["content-type"] == "application/json"
    assert customer.headers["ce_type"] == "CustomerRenamed"
    assert customer.headers["ce_id"] == str(ids[1])
    assert customer.key == b"c-9"


async def _none_left(db: asyncpg.Connection, table: str) -> bool:
    return await unpublished(db, table) == 0


async def test_notify_wakes_the_relay_long_before_the_poll(
    db: asyncpg.Connection,
    table: str,
    postgres_dsn: str,
    settings: Settings,
    registry: MemoryRegistry,
    offsets: OffsetStore,
    reader: TopicReader,
    unique_topic: Callable[[str], str],
) -> None:
    prefix = unique_topic("outbox")
    relay = outbox(
        "relay", table, postgres_dsn, settings, registry, offsets, prefix, poll_interval=60
    )
    async with running(relay):
        # A first row relayed: the relay has polled and is idle now, waiting up to 60 s.
        await insert(db, table, [("order", "o-0", "OrderPlaced", {"id": 0})])
        await eventually(lambda: _none_left(db, table), within=10)
        started = time.monotonic()
        await insert(db, table, [("order", "o-1", "OrderPlaced", {"id": 1})])
        await eventually(lambda: _none_left(db, table), within=10)
        assert time.monotonic() - started < 5
    assert len(await reader.read(f"{prefix}.order", 2)) == 2


async def test_a_row_that_does_not_validate_is_dead_lettered_and_marked(
    db: asyncpg.Connection,
    table: str,
    postgres_dsn: str,
    settings: Settings,
    registry: MemoryRegistry,
    offsets: OffsetStore,
    reader: TopicReader,
    unique_topic: Callable[[str], str],
) -> None:
    prefix = unique_topic("outbox")
    relay = outbox(
        "relay",
        table,
        postgres_dsn,
        settings,
        registry,
        offsets,
        prefix,
        event_types={"Tick": "tests.integration.connectors.helpers:Tick"},
        require_schema=True,
        dead_letter_topic=f"{prefix}.dlq",
    )
    async with running(relay):
        ids = await insert(
            db,
            table,
            [
                ("tick", "t", "Tick", {"n": "one"}),
                ("tick", "t", "Unknown", {"n": 1}),
                ("tick", "t", "Tick", {"n": 3}),
            ],
        )
        await eventually(lambda: _none_left(db, table))
    letters = await reader.read(f"{prefix}.dlq", 2)
    assert [r.headers["eventplatform.errors.source.id"] for r in letters] == [
        str(ids[0]),
        str(ids[1]),
    ]
    assert json.loads(letters[0].value) == {"n": "one"}
    assert "$.n" in letters[0].headers["__connect.errors.exception.message"]
    assert "require_schema" in letters[1].headers["__connect.errors.exception.message"]
    (good,) = await reader.read(f"{prefix}.tick", 1)
    assert (await reader.decode(good, Tick)).n == 3
    assert relay.stats.counters["dead_lettered"] == 2


class _CrashBeforeMark(OutboxSource):
    """Fails between the acknowledgement and the mark, once per process (like a kill -9)."""

    crashed = False

    async def _mark(self, conn: Any, ids: list[Any]) -> None:
        if not _CrashBeforeMark.crashed:
            _CrashBeforeMark.crashed = True
            raise RuntimeError("crash between publish and mark")
        await super()._mark(conn, ids)


async def test_a_crash_between_publish_and_mark_republishes_the_same_ids(
    db: asyncpg.Connection,
    table: str,
    postgres_dsn: str,
    settings: Settings,
    registry: MemoryRegistry,
    offsets: OffsetStore,
    reader: TopicReader,
    unique_topic: Callable[[str], str],
) -> None:
    prefix = unique_topic("outbox")
    first = outbox(
        "relay", table, postgres_dsn, settings, registry, offsets, prefix, cls=_CrashBeforeMark
    )
    await first.start()  # creates the table
    ids = await insert(db, table, [("order", f"o-{n % 3}", "X", {"n": n}) for n in range(10)])
    with pytest.raises(RuntimeError, match="crash between publish and mark"):
        await first.run()
    await first.close()
    assert await unpublished(db, table) == 10  # rolled back: nothing marked
    assert await reader.end_offset(f"{prefix}.order") == 10  # but all durable

    second = outbox("relay", table, postgres_dsn, settings, registry, offsets, prefix)
    async with running(second):
        await eventually(lambda: _none_left(db, table))
    received = await reader.read(f"{prefix}.order", 20)
    assert len(received) == 20  # every row twice ...
    by_id: dict[str, set[bytes]] = defaultdict(set)
    for r in received:
        by_id[r.headers["ce_id"]].add(r.value)
    assert set(by_id) == {str(i) for i in ids}  # ... under its own id, so dedup leaves 10
    assert all(len(values) == 1 for values in by_id.values())


async def test_two_relays_never_send_a_row_twice_and_keep_aggregate_order(
    db: asyncpg.Connection,
    table: str,
    postgres_dsn: str,
    settings: Settings,
    registry: MemoryRegistry,
    offsets: OffsetStore,
    reader: TopicReader,
    unique_topic: Callable[[str], str],
) -> None:
    prefix = unique_topic("outbox")
    relays = [
        outbox(name, table, postgres_dsn, settings, registry, offsets, prefix, batch_size=7)
        for name in ("relay-a", "relay-b")
    ]
    installer = outbox("installer", table, postgres_dsn, settings, registry, offsets, prefix)
    await installer.start()  # creates the table
    await installer.close()
    # 100 aggregates of 3 events each: both relays find work, and each aggregate's order
    # holds across them.
    await insert(db, table, [("order", f"o-{n % 100}", "X", {"n": n}) for n in range(300)])
    async with running(relays[0]), running(relays[1]):
        await eventually(lambda: _none_left(db, table), within=30)
    received = await reader.read(f"{prefix}.order", 300)
    assert len(received) == 300
    assert len({r.headers["ce_id"] for r in received}) == 300
    per_key: dict[bytes | None, list[int]] = defaultdict(list)
    for r in received:
        per_key[r.key].append(json.loads(r.value)["n"])
    for values in per_key.values():
        assert values == sorted(values)
    assert relays[0].stats.records > 0
    assert relays[1].stats.records > 0
