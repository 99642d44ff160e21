"""What only the SQLite store does: WAL, the write lock, its worker thread, raw connections."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from eventplatform.errors import (
    IdempotencyConflict,
    IdempotencyStoreError,
    IdempotencyStoreUnavailable,
)
from eventplatform.idempotency import Claim, SqliteStore, SqliteUnit, Unit

pytestmark = pytest.mark.integration


class Boom(Exception):
    pass


def store(path: Path, **options: object) -> SqliteStore:
    return SqliteStore(path=path, purge_interval=None, **options)  # type: ignore[arg-type]


def read(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_file_is_created_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    async with store(path, table="my_keys"):
        assert read(path, "PRAGMA journal_mode") == [("wal",)]
        assert read(path, "SELECT name FROM sqlite_master WHERE type = 'table'") == [("my_keys",)]


async def test_write_lock_held_past_busy_timeout_is_a_conflict(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    async with store(path) as first, store(path, busy_timeout=0.2) as second:
        async with first.batch("g", owner="m1") as held:
            await held.claim(["k"])
            with pytest.raises(IdempotencyConflict, match="busy_timeout") as caught:
                async with second.batch("g", owner="m2"):
                    pass
            assert caught.value.retriable
            held.complete("k")
        async with second.batch("g", owner="m2") as batch:
            assert await batch.claim(["k"]) == Claim(done=frozenset({"k"}))


async def test_missing_directory_is_unavailable(tmp_path: Path) -> None:
    missing = store(tmp_path / "absent" / "keys.db")
    with pytest.raises(IdempotencyStoreUnavailable, match="unable to open"):
        await missing.start()
    await missing.close()


async def write_twice_then_fail(unit: Unit) -> None:
    await unit.execute("INSERT INTO t VALUES (?)", "b")
    await unit.execute("INSERT INTO t VALUES (:v)", {"v": "b2"})
    raise Boom


async def test_run_hands_the_connection_inside_the_savepoint(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    async with store(path) as s:
        await s.lookup("g", ["x"])
        async with s.batch("g", owner="m") as batch:
            await batch.claim(["a", "b"])
            async with batch.unit("a") as unit:
                assert isinstance(unit, SqliteUnit)
                await unit.run(lambda conn: conn.execute("CREATE TABLE t (v TEXT)"))
                await unit.run(lambda conn: conn.execute("INSERT INTO t VALUES ('a')"))
                assert await unit.run(lambda c: c.execute("PRAGMA synchronous").fetchone()) == (
                    2,  # FULL
                )
            with pytest.raises(Boom):
                async with batch.unit("b") as unit:
                    await write_twice_then_fail(unit)
    assert read(path, "SELECT v FROM t") == [("a",)]


async def test_unit_without_writes_sends_no_savepoint(tmp_path: Path) -> None:
    statements: list[str] = []
    async with (
        store(tmp_path / "keys.db", trace=statements.append) as s,
        s.batch("g", owner="m") as batch,
    ):
        await batch.claim(["a", "b"])
        before = len(statements)
        async with batch.unit("a"):
            pass
        async with batch.unit("b") as unit:
            await unit.execute("SELECT 1")
        assert statements[before:] == [
            "SAVEPOINT eventplatform_unit",
            "SELECT 1",
            "RELEASE eventplatform_unit",
        ]


async def test_same_task_using_the_store_inside_its_batch_fails_fast(tmp_path: Path) -> None:
    async with store(tmp_path / "keys.db") as s, s.batch("g", owner="m") as batch:
        await batch.claim(["a"])
        with pytest.raises(IdempotencyStoreError, match="finish the batch first"):
            await s.lookup("g", ["a"])


async def test_cancelled_batch_leaves_the_connection_usable(tmp_path: Path) -> None:
    async with store(tmp_path / "keys.db") as s:
        entered = asyncio.Event()

        async def stuck() -> None:
            async with s.batch("g", owner="m") as batch:
                await batch.claim(["a"])
                entered.set()
                await asyncio.sleep(3600)

        task = asyncio.create_task(stuck())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with s.batch("g", owner="m2") as batch:
            assert (await batch.claim(["a"])).fresh == ("a",)
