"""What only the PostgreSQL store does: lock timeouts, savepoint hygiene, the pool, the DDL."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from eventplatform.errors import (
    IdempotencyConflict,
    IdempotencyStoreError,
    IdempotencyStoreUnavailable,
)
from eventplatform.idempotency import Claim, PostgresStore, PostgresUnit
from tests.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
async def table(postgres_dsn: str) -> AsyncIterator[str]:
    name = f"idem_{uuid.uuid4().hex[:10]}"
    yield name
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {name}")
    finally:
        await conn.close()


def store(dsn: str, table: str, **options: object) -> PostgresStore:
    return PostgresStore(dsn=dsn, table=table, purge_interval=None, **options)  # type: ignore[arg-type]


async def test_lock_timeout_is_a_retriable_conflict(postgres_dsn: str, table: str) -> None:
    async with (
        store(postgres_dsn, table) as first,
        store(postgres_dsn, table, lock_timeout=0.2) as second,
    ):
        async with first.batch("g", owner="m1") as held:
            await held.claim(["k"])
            started = time.monotonic()
            with pytest.raises(IdempotencyConflict, match="lock timeout") as caught:
                async with second.batch("g", owner="m2") as batch:
                    await batch.claim(["k"])
            assert caught.value.retriable
            assert time.monotonic() - started < 5
            held.complete("k")
        async with second.batch("g", owner="m2") as batch:
            assert await batch.claim(["k"]) == Claim(done=frozenset({"k"}))


async def swallow_an_error(unit: PostgresUnit, table: str) -> None:
    conn = await unit.connection()
    with contextlib.suppress(asyncpg.NotNullViolationError):
        await conn.execute(f"INSERT INTO {table} VALUES ('x')")  # no key: fails


async def test_unit_whose_handler_swallowed_an_error_is_not_done(
    postgres_dsn: str, table: str
) -> None:
    async with store(postgres_dsn, table) as s:
        async with s.batch("g", owner="m1") as batch:
            await batch.claim(["a", "b"])
            unit = batch.unit("a")
            assert isinstance(unit, PostgresUnit)
            with pytest.raises(IdempotencyStoreError, match="handler carried on"):
                async with unit:
                    await swallow_an_error(unit, table)
            async with batch.unit("b") as unit:  # the transaction is usable again
                assert await unit.fetch("SELECT 1") == [(1,)]
            assert batch.pending == frozenset({"a"})
        assert set(await s.lookup("g", ["a", "b"])) == {"b"}


async def test_unit_without_writes_sends_no_savepoint(postgres_dsn: str, table: str) -> None:
    statements: list[str] = []
    async with (
        store(postgres_dsn, table, trace=statements.append) as s,
        s.batch("g", owner="m1") as batch,
    ):
        await batch.claim(["a", "b"])
        async with batch.unit("a"):
            pass
        async with batch.unit("b") as unit:
            await unit.execute("SELECT 1")
        # Logged queries arrive in order: b's RELEASE is the marker that a's would be in.
        await until(lambda: "RELEASE SAVEPOINT eventplatform_unit" in statements, within=10)
        assert statements[-3:] == [
            "SAVEPOINT eventplatform_unit",
            "SELECT 1",
            "RELEASE SAVEPOINT eventplatform_unit",
        ]
        assert statements.count("SAVEPOINT eventplatform_unit") == 1  # none for unit "a"


async def test_unreachable_server_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = PostgresStore(dsn=f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=2)
    with pytest.raises(IdempotencyStoreUnavailable) as caught:
        await dead.start()
    assert caught.value.retriable
    await dead.close()


async def test_instances_starting_together_create_the_table_once(
    postgres_dsn: str, table: str
) -> None:
    stores = [store(postgres_dsn, table) for _ in range(4)]
    started = await asyncio.gather(*(s.start() for s in stores), return_exceptions=True)
    conn = await asyncpg.connect(postgres_dsn)
    try:
        assert [o for o in started if isinstance(o, BaseException)] == []
        assert await conn.fetchval("SELECT count(*) FROM pg_class WHERE relname = $1", table) == 1
        # One table, shared: a key one instance completed is done for every other one.
        async with stores[0].batch("g", owner="m0") as batch:
            assert (await batch.claim(["k"])).fresh == ("k",)
            batch.complete("k")
        for other in stores[1:]:
            async with other.batch("g", owner="m1") as batch:
                assert await batch.claim(["k"]) == Claim(done=frozenset({"k"}))
    finally:
        await conn.close()
        for s in stores:
            await s.close()


async def test_schema_qualified_table(postgres_dsn: str) -> None:
    schema = f"ep_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        async with store(postgres_dsn, f"{schema}.keys") as s, s.batch("g", owner="m") as b:
            assert (await b.claim(["k"])).fresh == ("k",)
            b.complete("k")
        assert await conn.fetchval(f"SELECT count(*) FROM {schema}.keys") == 1
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()


async def test_server_clock_decides_leases(postgres_dsn: str, table: str) -> None:
    async with store(postgres_dsn, table, lease=30) as s:
        async with s.batch("g", owner="m", transactional=False) as batch:
            await batch.claim(["k"])
            record = (await s.lookup("g", ["k"]))["k"]
        assert record.lease_until is not None
        assert abs(record.lease_until - (time.time() + 30)) < 5
