"""The idempotency store contract, run against the memory, SQLite and PostgreSQL stores."""

from __future__ import annotations

import asyncio

import pytest

from eventplatform.idempotency import Claim
from tests.integration.idempotency.conftest import Harness
from tests.waiting import until

pytestmark = pytest.mark.integration


class Boom(Exception):
    pass


async def test_claim_complete_then_skip_done(harness: Harness) -> None:
    store = await harness.store()
    async with store.batch("g", owner="m1") as batch:
        claim = await batch.claim(["a", "b", "a"])
        assert claim == Claim(fresh=("a", "b"))
        for key in claim.fresh:
            async with batch.unit(key) as unit:
                await harness.effect(unit)
    async with store.batch("g", owner="m2") as batch:
        claim = await batch.claim(["b", "c", "a"])
        assert claim == Claim(fresh=("c",), done=frozenset({"a", "b"}))
    records = await store.lookup("g", ["a", "b", "c"])
    assert {key for key, rec in records.items() if rec.done} == {"a", "b"}
    assert await harness.effects() == {"a": 1, "b": 1}


async def test_groups_are_independent(harness: Harness) -> None:
    store = await harness.store()
    async with store.batch("g1", owner="m1") as batch:
        await batch.claim(["a"])
        batch.complete("a")
    async with store.batch("g2", owner="m1") as batch:
        assert (await batch.claim(["a"])).fresh == ("a",)


async def test_lease_blocks_second_owner_until_expiry(harness: Harness) -> None:
    first, second = await harness.store(), await harness.store()
    async with first.batch("g", owner="m1", lease=10, transactional=False) as held:
        assert (await held.claim(["k"])).fresh == ("k",)
        async with second.batch("g", owner="m2", lease=10, transactional=False) as other:
            assert await other.claim(["k"]) == Claim(busy=frozenset({"k"}))
            harness.clock.advance(11)
            assert (await other.claim(["k"])).fresh == ("k",)
            async with other.unit("k") as unit:
                await harness.effect(unit)
        async with held.unit("k") as unit:  # too late: the lease lapsed and was taken
            await harness.effect(unit)
    assert held.lost == frozenset({"k"})
    assert other.lost == frozenset()
    assert (await first.lookup("g", ["k"]))["k"].owner == "m2"


async def test_owner_reenters_its_own_live_lease(harness: Harness) -> None:
    store = await harness.store()
    async with store.batch("g", owner="m1", transactional=False) as one:
        await one.claim(["k"])
        async with store.batch("g", owner="m1", transactional=False) as again:
            assert (await again.claim(["k"])).fresh == ("k",)


async def test_renew_extends_the_lease(harness: Harness) -> None:
    first, second = await harness.store(), await harness.store()
    async with first.batch("g", owner="m1", lease=10, transactional=False) as held:
        await held.claim(["k", "j"])
        held.complete("j")
        harness.clock.advance(8)
        assert await held.renew() == frozenset()
        harness.clock.advance(8)  # 16 s after the claim, 8 after the renewal
        async with second.batch("g", owner="m2", transactional=False) as other:
            assert await other.claim(["k", "j"]) == Claim(busy=frozenset({"k", "j"}))
    assert (await first.lookup("g", ["j"]))["j"].done


async def test_renew_reports_keys_taken_over(harness: Harness) -> None:
    first, second = await harness.store(), await harness.store()
    async with first.batch("g", owner="m1", lease=10, transactional=False) as held:
        await held.claim(["k"])
        harness.clock.advance(11)
        async with second.batch("g", owner="m2", transactional=False) as other:
            await other.claim(["k"])
            assert await held.renew() == frozenset({"k"})
            assert held.pending == frozenset()


async def test_failed_unit_releases_its_key(harness: Harness) -> None:
    store = await harness.store()
    async with store.batch("g", owner="m1") as batch:
        await batch.claim(["a", "b"])
        with pytest.raises(Boom):
            async with batch.unit("a"):
                raise Boom
        async with batch.unit("b") as unit:
            await harness.effect(unit)
        assert batch.pending == frozenset({"a"})
    other = await harness.store()
    async with other.batch("g", owner="m2") as batch:
        assert await batch.claim(["a", "b"]) == Claim(fresh=("a",), done=frozenset({"b"}))
    assert await harness.effects() == {"b": 1}


async def test_failed_unit_can_be_retried_in_the_same_batch(harness: Harness) -> None:
    store = await harness.store()
    async with store.batch("g", owner="m1") as batch:
        await batch.claim(["a"])
        with pytest.raises(Boom):
            async with batch.unit("a"):
                raise Boom
        async with batch.unit("a") as unit:
            await harness.effect(unit)
    assert await harness.effects() == {"a": 1}


async def test_nontransactional_exit_by_exception_keeps_completed_keys(harness: Harness) -> None:
    store = await harness.store()

    async def fail_after_a() -> None:
        async with store.batch("g", owner="m1", transactional=False) as batch:
            await batch.claim(["a", "b"])
            async with batch.unit("a") as unit:
                await harness.effect(unit)
            raise Boom

    with pytest.raises(Boom):
        await fail_after_a()
    # The effect of "a" happened outside any transaction: it must be recorded, "b" released.
    async with store.batch("g", owner="m2") as batch:
        assert await batch.claim(["a", "b"]) == Claim(fresh=("b",), done=frozenset({"a"}))


async def test_expired_done_key_runs_again_and_purge_removes_it(harness: Harness) -> None:
    store = await harness.store(ttl=100)
    async with store.batch("g", owner="m1") as batch:
        await batch.claim(["old1", "old2", "old3"])
        for key in ("old1", "old2", "old3"):
            batch.complete(key)
    harness.clock.advance(50)
    async with store.batch("g", owner="m1") as batch:
        await batch.claim(["new"])
        batch.complete("new")
    harness.clock.advance(60)  # the old keys are 110 s old, "new" 60 s
    assert set(await store.lookup("g", ["old1", "old2", "old3", "new"])) == {
        "old1",
        "old2",
        "old3",
        "new",
    }
    assert await store.purge(batch_size=2) == 3  # two statements: 2 rows, then 1
    assert set(await store.lookup("g", ["old1", "old2", "old3", "new"])) == {"new"}
    async with store.batch("g", owner="m2") as batch:
        assert await batch.claim(["old1", "new"]) == Claim(fresh=("old1",), done=frozenset({"new"}))


async def test_expired_key_is_fresh_before_any_purge(harness: Harness) -> None:
    store = await harness.store(ttl=100)
    async with store.batch("g", owner="m1") as batch:
        await batch.claim(["k"])
        batch.complete("k")
    harness.clock.advance(101)
    async with store.batch("g", owner="m2") as batch:
        assert (await batch.claim(["k"])).fresh == ("k",)


async def test_concurrent_batches_race_same_key_effect_once(harness: Harness) -> None:
    first, second = await harness.store(), await harness.store()
    claimed = asyncio.Event()
    loser_claims: list[Claim] = []

    async def member_two() -> None:
        await claimed.wait()
        while True:  # a consumer claims busy keys again until they are settled
            async with second.batch("g", owner="m2") as batch:
                claim = await batch.claim(["k", "other"])
                loser_claims.append(claim)
                for key in claim.fresh:
                    async with batch.unit(key) as unit:
                        await harness.effect(unit)
            if not claim.busy:
                return
            await asyncio.sleep(0.05)

    racer = asyncio.create_task(member_two())
    async with first.batch("g", owner="m1") as batch:
        assert (await batch.claim(["k"])).fresh == ("k",)
        async with batch.unit("k") as unit:
            await harness.effect(unit)
        claimed.set()

        async def member_two_tried() -> bool:  # it waits for our lock, or it saw "busy"
            return bool(loser_claims) or await harness.waits_for_a_lock()

        await until(member_two_tried, within=30, what="member two to claim the key too")
    await asyncio.wait_for(racer, 30)
    assert await harness.effects() == {"k": 1, "other": 1}
    assert all("k" not in claim.fresh for claim in loser_claims)
    assert "k" in loser_claims[-1].done


async def test_race_winner_that_fails_lets_the_other_member_run_it(harness: Harness) -> None:
    first, second = await harness.store(), await harness.store()
    claimed = asyncio.Event()
    claims: list[Claim] = []

    async def member_two() -> Claim:
        await claimed.wait()
        while True:
            async with second.batch("g", owner="m2") as batch:
                claim = await batch.claim(["k"])
                claims.append(claim)
                for key in claim.fresh:
                    async with batch.unit(key) as unit:
                        await harness.effect(unit)
            if not claim.busy:
                return claim
            await asyncio.sleep(0.05)

    async def member_two_tried() -> bool:  # it waits for our lock, or it saw "busy"
        return bool(claims) or await harness.waits_for_a_lock()

    async def handler_fails_late() -> None:
        claimed.set()
        await until(member_two_tried, within=30, what="member two to claim the key too")
        raise Boom

    racer = asyncio.create_task(member_two())
    async with first.batch("g", owner="m1") as batch:
        await batch.claim(["k"])
        with pytest.raises(Boom):
            async with batch.unit("k"):
                await handler_fails_late()
    claim = await asyncio.wait_for(racer, 30)
    assert claim.fresh == ("k",)
    assert await harness.effects() == {"k": 1}
