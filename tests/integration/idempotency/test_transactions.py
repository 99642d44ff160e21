"""The inbox case on SQLite and PostgreSQL: the handler's writes commit with their keys."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from eventplatform.errors import IdempotencyStoreError, StoreNotTransactional
from eventplatform.idempotency import Claim, Unit, open_store
from tests.integration.idempotency.conftest import Harness
from tests.waiting import until

pytestmark = pytest.mark.integration

CHILD = Path(__file__).with_name("_crash_child.py")
REPO = Path(__file__).resolve().parents[3]


class Boom(Exception):
    pass


async def write_twice_then_fail(h: Harness, unit: Unit) -> None:
    await h.effect(unit)
    await unit.execute(h.insert_effect, f"{unit.key}-second-write")
    raise Boom


async def test_savepoint_rollback_of_one_unit_keeps_the_others(sql_harness: Harness) -> None:
    h = sql_harness
    store = await h.store()
    async with store.batch("g", owner="m1") as batch:
        await batch.claim(["a", "b", "c"])
        async with batch.unit("a") as unit:
            await h.effect(unit)
        with pytest.raises(Boom):
            async with batch.unit("b") as unit:
                await write_twice_then_fail(h, unit)
        async with batch.unit("c") as unit:
            await h.effect(unit)
    assert await h.effects() == {"a": 1, "c": 1}
    async with (await h.store()).batch("g", owner="m2") as batch:
        assert await batch.claim(["a", "b", "c"]) == Claim(fresh=("b",), done=frozenset({"a", "c"}))


async def test_exception_in_batch_rolls_back_effects_and_marks(sql_harness: Harness) -> None:
    h = sql_harness
    store = await h.store()

    async def crash_before_commit() -> None:
        async with store.batch("g", owner="m1") as batch:
            await batch.claim(["a", "b"])
            for key in ("a", "b"):
                async with batch.unit(key) as unit:
                    await h.effect(unit)
            raise Boom

    with pytest.raises(Boom):
        await crash_before_commit()
    assert await h.effects() == {}
    assert await store.lookup("g", ["a", "b"]) == {}
    async with store.batch("g", owner="m2") as batch:
        assert (await batch.claim(["a", "b"])).fresh == ("a", "b")


async def test_transactional_claim_is_held_by_the_transaction_not_the_lease(
    sql_harness: Harness,
) -> None:
    h = sql_harness
    first, second = await h.store(lease=5), await h.store(lease=5)
    started = asyncio.Event()

    async def member_two() -> Claim:
        await started.wait()
        async with second.batch("g", owner="m2") as batch:
            claim = await batch.claim(["k"])
            for key in claim.fresh:
                async with batch.unit(key) as unit:
                    await h.effect(unit)
            return claim

    racer = asyncio.create_task(member_two())
    async with first.batch("g", owner="m1") as batch:
        await batch.claim(["k"])
        async with batch.unit("k") as unit:
            await h.effect(unit)
        h.clock.advance(3600)  # far past any lease: only the open transaction protects "k"
        started.set()
        await until(h.waits_for_a_lock, within=30, what="member two to wait for our lock")
        assert not racer.done()  # member two waits for our transaction
    claim = await asyncio.wait_for(racer, 30)
    assert "k" not in claim.fresh
    assert await h.effects() == {"k": 1}


async def write_then_fail_in_sql(h: Harness, unit: Unit) -> None:
    await h.effect(unit)
    await unit.execute("INSERT INTO no_such_table VALUES (1)")


async def test_handler_statement_error_fails_only_its_unit(sql_harness: Harness) -> None:
    h = sql_harness
    store = await h.store()
    async with store.batch("g", owner="m1") as batch:
        await batch.claim(["a", "b"])
        with pytest.raises(IdempotencyStoreError, match="handler statement") as caught:
            async with batch.unit("a") as unit:
                await write_then_fail_in_sql(h, unit)
        assert caught.value.__cause__ is not None  # the driver's error, chained
        async with batch.unit("b") as unit:
            await h.effect(unit)
            rows = await unit.fetch(f"SELECT key FROM {h.effects_table} ORDER BY key")
            assert rows == [("b",)]
            await unit.executemany(h.insert_effect, [("b-1",), ("b-2",)])
    assert await h.effects() == {"b": 1, "b-1": 1, "b-2": 1}
    assert set(await store.lookup("g", ["a", "b"])) == {"b"}


async def test_claim_is_one_statement_per_batch(sql_harness: Harness) -> None:
    h = sql_harness
    statements: list[str] = []
    store = await h.store(trace=statements.append)
    other = await h.store()
    async with other.batch("g", owner="m0", transactional=False) as held:
        await held.claim([f"busy{i}" for i in range(50)])
        async with store.batch("g", owner="m1") as batch:
            await batch.claim([f"done{i}" for i in range(100)])
            for i in range(100):
                batch.complete(f"done{i}")
        counts = []
        for size in (3, 600):
            keys = [f"new{size}-{i}" for i in range(size)]
            keys += [f"done{i}" for i in range(100)] + [f"busy{i}" for i in range(50)]
            async with store.batch("g", owner="m1") as batch:
                await asyncio.sleep(0)
                before = len(statements)
                claim = await batch.claim(keys)
                await asyncio.sleep(0)  # asyncpg hands logged queries over on the next tick
                await asyncio.sleep(0)
                counts.append(len(statements) - before)
            assert len(claim.fresh) == size
            assert len(claim.done) == 100
            assert len(claim.busy) == 50
    # PostgreSQL: one statement. SQLite: the upsert plus one SELECT telling done from busy,
    # both in one hop to the store's thread. Never one per key.
    expected = 1 if h.kind == "postgres" else 2
    assert counts == [expected, expected]


def _spawn(h: Harness) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(CHILD), h.url, h.table, h.effects_table],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


async def test_crash_mid_batch_rolls_back_effects_and_keys(sql_harness: Harness) -> None:
    h = sql_harness
    child = _spawn(h)
    try:
        assert child.stdout is not None
        lines = [await asyncio.to_thread(child.stdout.readline) for _ in range(2)]
        assert lines == ["committed\n", "ready\n"], child.stderr.read() if child.stderr else ""
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    store = await h.store(clock=None)
    assert await h.effects() == {"a": 1, "b": 1}
    assert set(await store.lookup("g", ["a", "b", "c", "d"])) == {"a", "b"}
    async with store.batch("g", owner="restarted") as batch:
        claim = await batch.claim(["a", "b", "c", "d"])
        assert claim == Claim(fresh=("c", "d"), done=frozenset({"a", "b"}))


async def escape_the_savepoint_then_fail(h: Harness, unit: Unit) -> None:
    await unit.execute("RELEASE eventplatform_unit")  # a handler that ends our savepoint
    await h.effect(unit)
    raise Boom


async def test_unit_that_cannot_be_rolled_back_fails_the_whole_batch(
    sql_harness: Harness,
) -> None:
    h = sql_harness
    store = await h.store()

    async def poisoned_batch() -> None:
        async with store.batch("g", owner="m1") as batch:
            await batch.claim(["a", "b"])
            async with batch.unit("a") as unit:
                await h.effect(unit)
            with pytest.raises(Boom):  # the handler's error stays what the caller sees
                async with batch.unit("b") as unit:
                    await escape_the_savepoint_then_fail(h, unit)

    with pytest.raises(IdempotencyStoreError, match="whole batch was rolled back"):
        await poisoned_batch()
    assert await h.effects() == {}
    assert await store.lookup("g", ["a", "b"]) == {}


async def test_cancelled_batch_waiting_for_another_member_cleans_up(
    sql_harness: Harness,
) -> None:
    h = sql_harness
    first, second = await h.store(), await h.store()
    waiting = asyncio.Event()

    async def member_two() -> None:
        waiting.set()
        async with second.batch("g", owner="m2") as batch:
            await batch.claim(["k"])

    async with first.batch("g", owner="m1") as held:
        await held.claim(["k"])
        held.complete("k")
        racer = asyncio.create_task(member_two())
        await waiting.wait()
        await until(h.waits_for_a_lock, within=30, what="member two to wait for our lock")
        racer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await racer
    async with second.batch("g", owner="m2") as batch:
        assert await batch.claim(["k"]) == Claim(done=frozenset({"k"}))


async def test_the_same_handler_code_writes_event_values_on_both_stores(
    sql_harness: Harness,
) -> None:
    """The README's handler: `$1` placeholders, UUID, Decimal and datetime values, a table
    created through ``store.execute`` (what an app's ``on_startup`` hook does)."""
    h = sql_harness
    store = await h.store()
    table = f"payments_{h.table}"
    await store.execute(
        f"CREATE TABLE IF NOT EXISTS {table} "
        "(order_id UUID PRIMARY KEY, amount NUMERIC(10, 2) NOT NULL, paid_at TIMESTAMPTZ)"
    )
    order_id, amount = uuid.uuid4(), Decimal("9.00")
    paid_at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    async with store.batch("g", owner="m1") as batch:
        await batch.claim(["k"])
        async with batch.unit("k") as unit:
            sql = f"INSERT INTO {table} (order_id, amount, paid_at) VALUES ($1, $2, $3)"
            await unit.execute(sql, order_id, amount, paid_at)
            rows = await unit.fetch(
                f"SELECT order_id, amount FROM {table} WHERE order_id = $1", order_id
            )
    assert [(str(o), Decimal(str(a))) for o, a in rows] == [(str(order_id), amount)]
    await store.execute(f"DROP TABLE {table}")


async def test_execute_on_a_memory_store_says_it_has_no_database() -> None:
    store = open_store("memory://")
    async with store:
        with pytest.raises(StoreNotTransactional, match="no database"):
            await store.execute("CREATE TABLE t (x INT)")
