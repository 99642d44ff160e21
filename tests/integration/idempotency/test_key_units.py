"""Key units: one key claimed and run in a transaction of its own, on every store.

``store.unit(group, key, owner=…)`` and ``store.session(…).unit(key)`` are what a consumer
with handlers that wait on I/O (and a queue worker, per record) use instead of a batch: on
PostgreSQL several run at once, each on its own pooled connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
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


# -- claiming ahead: the running unit's COMMIT carries the next unit's BEGIN and claim --------


@pytest.fixture
async def pg(postgres_dsn: str, tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness("postgres", tmp_path, postgres_dsn)
    await h.setup()
    try:
        yield h
    finally:
        await h.teardown()


def _claims(statements: list[str]) -> list[str]:
    return [s for s in statements if "EXECUTE eventplatform_claim_one(" in s]


@pytest.mark.postgres
async def test_a_session_claims_the_expected_key_in_the_commit_message(pg: Harness) -> None:
    statements: list[str] = []
    store = await pg.store(trace=statements.append)
    async with store.session("g", owner="a") as session:
        async with session.unit("k1") as first:
            await pg.effect(first)
            session.expect("k2")
        async with session.unit("k2") as second:
            assert second.fresh
            await pg.effect(second)
    assert await pg.effects() == {"k1": 1, "k2": 1}
    claims = [s for s in _claims(statements) if "$k$k2$k$" in s]
    assert len(claims) == 1  # the second unit sent no claim of its own
    assert claims[0].startswith("SELECT 1; COMMIT; BEGIN")
    assert "COMMIT" not in statements[: statements.index(claims[0])]  # no lone COMMIT first


@pytest.mark.postgres
async def test_a_unit_prepares_the_claim_again_when_a_handler_deallocated_it(pg: Harness) -> None:
    store = await pg.store()
    async with store.session("g", owner="a") as session:
        async with session.unit("k1") as first:
            await pg.effect(first)
            await first.execute("DEALLOCATE eventplatform_claim_one")  # gone
        async with session.unit("k2") as second:
            assert second.fresh
            await pg.effect(second)
            await second.execute("DEALLOCATE eventplatform_claim_one")
            session.expect("k3")  # the claim ahead fails after COMMIT: k3 claims itself
        async with session.unit("k3") as third:
            assert third.fresh
            await pg.effect(third)
    assert await pg.effects() == {"k1": 1, "k2": 1, "k3": 1}


@pytest.mark.postgres
async def test_a_wrong_guess_gives_the_claimed_key_back(pg: Harness) -> None:
    store = await pg.store()
    other = await pg.store(lock_timeout=0.3)
    async with store.session("g", owner="a") as session:
        async with session.unit("k1") as first:
            await pg.effect(first)
            session.expect("guessed")
        async with session.unit("k2") as second:
            assert second.fresh
            await pg.effect(second)
            # The guessed key was rolled back before k2's claim: another member takes it.
            async with other.unit("g", "guessed", owner="b") as taken:
                assert taken.fresh
                await pg.effect(taken)
    assert await pg.effects() == {"k1": 1, "k2": 1, "guessed": 1}


@pytest.mark.postgres
async def test_an_expected_key_held_elsewhere_is_busy_and_the_commit_stands(pg: Harness) -> None:
    holder = await pg.store()
    statements: list[str] = []
    store = await pg.store(lock_timeout=0.3, trace=statements.append)
    async with holder.unit("g", "k2", owner="b") as held:
        assert held.fresh
        async with store.session("g", owner="a") as session:
            async with session.unit("k1") as first:
                await pg.effect(first)
                session.expect("k2")  # its claim waits past lock_timeout after COMMIT
            assert (await pg.effects())["k1"] == 1  # committed all the same
            async with session.unit("k2") as second:
                assert second.busy
        await pg.effect(held)
    # The unit of k2 knew it busy from the claim ahead: it did not wait for the lock again.
    assert len([s for s in _claims(statements) if "$k$k2$k$" in s]) == 1
    async with store.unit("g", "k2", owner="a") as later:
        assert later.done
    assert await pg.effects() == {"k1": 1, "k2": 1}


@pytest.mark.postgres
async def test_an_expected_key_already_done_is_found_done(pg: Harness) -> None:
    store = await pg.store()
    async with store.unit("g", "k2", owner="a") as earlier:
        await pg.effect(earlier)
    async with store.session("g", owner="a") as session:
        async with session.unit("k1") as first:
            await pg.effect(first)
            session.expect("k2")
        async with session.unit("k2") as second:
            assert second.done
        async with session.unit("k3") as third:  # the session carries on normally
            assert third.fresh
            await pg.effect(third)
    assert await pg.effects() == {"k1": 1, "k2": 1, "k3": 1}


@pytest.mark.postgres
async def test_a_swallowed_failure_is_caught_before_the_expected_claim(pg: Harness) -> None:
    store = await pg.store()
    other = await pg.store(lock_timeout=0.3)

    async with store.session("g", owner="a") as session:

        async def carry_on() -> None:
            async with session.unit("k1") as unit:
                await pg.effect(unit)
                with contextlib.suppress(IdempotencyStoreError):
                    await unit.execute("SELECT * FROM no_such_table")
                session.expect("k2")

        with pytest.raises(IdempotencyStoreError, match="carried on"):
            await carry_on()
        async with other.unit("g", "k2", owner="b") as k2:
            assert k2.fresh  # never claimed: nothing after the failed check ran
        async with session.unit("k1") as retry:
            assert retry.fresh  # nothing of k1 was committed
            await pg.effect(retry)
    assert await pg.effects() == {"k1": 1}
