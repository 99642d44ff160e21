"""Key units: one key claimed and run in a transaction of its own, on every store.

``store.unit(group, key, owner=…)`` and ``store.session(…).unit(key)`` are what a consumer
with handlers that wait on I/O (and a queue worker, per record) use instead of a batch: on
PostgreSQL several run at once, each on its own pooled connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path

import pytest

from eventplatform.errors import IdempotencyStoreError
from eventplatform.idempotency import KeyState, KeyUnit
from tests.integration.idempotency.conftest import Harness
from tests.waiting import until

pytestmark = pytest.mark.integration


class Boom(Exception):
    pass


async def test_a_fresh_unit_commits_its_writes_with_the_key(harness: Harness) -> None:
    h = harness
    store = await h.store()
    async with store.unit("g", "k1", owner="a") as unit:
        assert unit.state is KeyState.FRESH
        assert unit.fresh
        await h.effect(unit)
    async with store.unit("g", "k1", owner="b") as again:
        assert again.done
        assert not again.fresh
        assert not again.busy
        with pytest.raises(IdempotencyStoreError, match="is done"):
            await again.execute("SELECT 1")
    assert (await h.effects())["k1"] == 1
    assert (await store.lookup("g", ["k1"]))["k1"].done


async def test_a_failing_unit_rolls_back_and_leaves_the_key_unfinished(harness: Harness) -> None:
    h = harness
    store = await h.store()

    async def fail() -> None:
        async with store.unit("g", "k1", owner="a") as unit:
            if unit.transactional:
                await h.effect(unit)  # rolled back below
            raise Boom

    with pytest.raises(Boom):
        await fail()
    async with store.unit("g", "k1", owner="a") as retry:
        assert retry.fresh
        await h.effect(retry)
    assert (await h.effects())["k1"] == 1


async def test_a_key_held_by_another_member_is_busy(harness: Harness) -> None:
    h = harness
    # Short lock waits: the second member must give up on the held key quickly.
    holder = await h.store(lock_timeout=0.3) if h.kind == "postgres" else await h.store()
    if h.kind == "postgres":
        other = await h.store(lock_timeout=0.3)
    elif h.kind == "sqlite":
        other = await h.store(busy_timeout=0.3)
    else:
        other = holder
    async with holder.unit("g", "k1", owner="a") as held:
        assert held.fresh
        async with other.unit("g", "k1", owner="b") as second:
            assert second.busy
        await h.effect(held)
    async with other.unit("g", "k1", owner="b") as third:
        assert third.done
    assert (await h.effects())["k1"] == 1


async def test_a_session_runs_units_one_after_another(harness: Harness) -> None:
    h = harness
    store = await h.store()
    async with store.session("g", owner="a") as session:
        for key in ("k1", "k2", "k1"):
            async with session.unit(key) as unit:
                if unit.fresh:
                    await h.effect(unit)
    assert (await h.effects()) == {"k1": 1, "k2": 1}


@pytest.mark.postgres
async def test_postgres_units_hold_transactions_at_once(postgres_dsn: str, tmp_path: Path) -> None:
    h = Harness("postgres", tmp_path, postgres_dsn)
    await h.setup()
    try:
        store = await h.store(max_connections=9)
        assert store.concurrent_units == 8
        inside: set[str] = set()
        release = asyncio.Event()

        async def work(key: str) -> None:
            async with store.session("g", owner="a") as session, session.unit(key) as unit:
                assert unit.fresh
                await h.effect(unit)
                inside.add(key)
                await release.wait()  # every unit holds its transaction open here

        keys = [f"k{n}" for n in range(8)]
        tasks = [asyncio.create_task(work(key)) for key in keys]
        try:
            await until(lambda: len(inside) == 8, what="8 units open at once", within=20)
        finally:
            release.set()
            await asyncio.gather(*tasks)
        assert await h.effects() == dict.fromkeys(keys, 1)
    finally:
        await h.teardown()


@pytest.mark.postgres
async def test_a_handler_that_swallows_a_failed_statement_does_not_complete(
    postgres_dsn: str, tmp_path: Path
) -> None:
    h = Harness("postgres", tmp_path, postgres_dsn)
    await h.setup()
    try:
        store = await h.store()
        key = f"k-{uuid.uuid4().hex}"

        async def carry_on() -> None:
            unit: KeyUnit
            async with store.unit("g", key, owner="a") as unit:
                await h.effect(unit)
                with contextlib.suppress(IdempotencyStoreError):
                    await unit.execute("SELECT * FROM no_such_table")

        with pytest.raises(IdempotencyStoreError, match="carried on"):
            await carry_on()
        async with store.unit("g", key, owner="a") as retry:
            assert retry.fresh  # nothing was committed: the key is claimable again
        assert (await h.effects())[key] == 0
    finally:
        await h.teardown()


TRICKY_KEYS = ["$k$", "a$k", "$k1$$k$", "'; DROP TABLE x; --", "back\\slash", "ünïcode ✓", "$"]


async def test_keys_that_look_like_sql_are_claimed_as_they_are(harness: Harness) -> None:
    h = harness
    store = await h.store()
    for key in TRICKY_KEYS:
        async with store.unit("g$k$", key, owner="o'$k") as unit:
            assert unit.fresh, key
            await h.effect(unit)
        async with store.unit("g$k$", key, owner="o'$k") as again:
            assert again.done, key
    records = await store.lookup("g$k$", TRICKY_KEYS)
    assert sorted(records) == sorted(TRICKY_KEYS)
    assert all(record.done for record in records.values())
    assert await h.effects() == dict.fromkeys(TRICKY_KEYS, 1)
