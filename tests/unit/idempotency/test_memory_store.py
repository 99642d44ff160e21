"""The memory store's logic: leases, TTL, purge, and the batch/unit state rules all stores share."""

from __future__ import annotations

import gc
import os
import time

import pytest

from eventplatform.errors import (
    ConfigurationError,
    IdempotencyStoreError,
    ResourceStateError,
    StoreNotTransactional,
)
from eventplatform.idempotency import (
    Batch,
    Claim,
    IdempotencyStore,
    MemoryStore,
    Unit,
    new_owner_id,
)
from tests.waiting import until


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingStore(MemoryStore):
    chunks = 0

    async def _purge_chunk(self, limit: int) -> int:
        self.chunks += 1
        return await super()._purge_chunk(limit)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def memory(clock: Clock, **options: float | None) -> MemoryStore:
    return MemoryStore(clock=clock, purge_interval=None, **options)  # type: ignore[arg-type]


async def run(store: MemoryStore, owner: str, keys: list[str], **options: float) -> Claim:
    """Claim ``keys`` and complete every fresh one, like a consumer whose handler succeeds."""
    async with store.batch("g", owner=owner, **options) as batch:  # type: ignore[arg-type]
        claim = await batch.claim(keys)
        for key in claim.fresh:
            async with batch.unit(key):
                pass
    return claim


async def test_claim_dedups_and_keeps_first_seen_order(clock: Clock) -> None:
    async with memory(clock) as store, store.batch("g", owner="m") as batch:
        assert await batch.claim(["b", "a", "b", "c", "a"]) == Claim(fresh=("b", "a", "c"))
        assert batch.pending == frozenset({"a", "b", "c"})


async def test_completed_key_is_never_run_again_within_ttl(clock: Clock) -> None:
    async with memory(clock, ttl=3600) as store:
        await run(store, "m1", ["k"])
        clock.now += 3599
        assert await run(store, "m2", ["k"]) == Claim(done=frozenset({"k"}))


async def test_lease_blocks_other_owners_until_it_expires(clock: Clock) -> None:
    async with memory(clock, lease=10) as store, store.batch("g", owner="m1") as held:
        await held.claim(["k"])
        clock.now += 9.9
        assert await run(store, "m2", ["k"]) == Claim(busy=frozenset({"k"}))
        clock.now += 0.1  # the lease ends at exactly claim time + 10 s
        assert await run(store, "m2", ["k"]) == Claim(fresh=("k",))
        held.complete("k")
    assert held.lost == frozenset({"k"})


async def test_batch_lease_overrides_the_store_default(clock: Clock) -> None:
    async with memory(clock, lease=10) as store, store.batch("g", owner="m1", lease=100) as b:
        await b.claim(["k"])
        clock.now += 50
        assert await run(store, "m2", ["k"]) == Claim(busy=frozenset({"k"}))


async def test_released_key_is_free_at_once(clock: Clock) -> None:
    async with memory(clock, lease=10) as store:
        async with store.batch("g", owner="m1") as batch:
            await batch.claim(["k"])
        assert await store.lookup("g", ["k"]) == {}
        assert await run(store, "m2", ["k"]) == Claim(fresh=("k",))


async def test_key_completed_in_this_batch_is_done_without_asking(clock: Clock) -> None:
    async with memory(clock) as store, store.batch("g", owner="m") as batch:
        await batch.claim(["k"])
        batch.complete("k")
        store._records.clear()  # the store would now say fresh: the batch must not ask it
        assert await batch.claim(["k", "k"]) == Claim(done=frozenset({"k"}))


async def test_records_carry_owner_lease_and_expiry(clock: Clock) -> None:
    async with memory(clock, lease=10, ttl=100) as store:
        async with store.batch("g", owner="m") as batch:
            await batch.claim(["a", "b"])
            leased = (await store.lookup("g", ["a"]))["a"]
            assert (leased.owner, leased.lease_until, leased.done_at) == ("m", clock.now + 10, None)
            assert leased.expires_at == clock.now + 110
            batch.complete("a")
            clock.now += 1
        done = await store.lookup("g", ["a", "b", "zzz"])
        assert set(done) == {"a"}
        assert done["a"].done
        assert (done["a"].lease_until, done["a"].done_at) == (None, clock.now)
        assert done["a"].expires_at == clock.now + 100


async def test_purge_deletes_only_expired_keys_in_batches(clock: Clock) -> None:
    store = CountingStore(clock=clock, ttl=100, purge_interval=None, purge_batch=1000)
    async with store:
        await run(store, "m", [f"old{i}" for i in range(2500)])
        clock.now += 50
        await run(store, "m", ["young"])
        async with store.batch("g", owner="m", lease=1000) as held:
            await held.claim(["leased"])
            clock.now += 60
            assert await store.purge() == 2500
            assert store.chunks == 3  # 1000 + 1000 + 500: never one long sweep
            assert set(await store.lookup("g", ["old0", "young", "leased"])) == {
                "young",
                "leased",
            }
            held.complete("leased")


async def test_purge_forgets_abandoned_leases(clock: Clock) -> None:
    async with memory(clock, lease=10, ttl=100) as store:
        abandoned = store.batch("g", owner="crashed")
        await abandoned.__aenter__()
        await abandoned.claim(["k"])  # never exits, like a member that died
        clock.now += 111
        assert await store.purge() == 1


async def test_background_purge_runs_every_interval(clock: Clock) -> None:
    async with MemoryStore(clock=clock, ttl=10, purge_interval=0.01) as store:
        await run(store, "m", ["k"])
        clock.now += 11
        await until(lambda: not store._records, within=10, what="the background purge")
        assert await store.lookup("g", ["k"]) == {}


async def test_renew_keeps_completed_keys_too(clock: Clock) -> None:
    async with memory(clock, lease=10) as store, store.batch("g", owner="m1") as batch:
        await batch.claim(["a", "b"])
        batch.complete("a")
        clock.now += 9
        assert await batch.renew() == frozenset()
        clock.now += 9
        assert await run(store, "m2", ["a", "b"]) == Claim(busy=frozenset({"a", "b"}))


async def test_unit_needs_a_pending_key(clock: Clock) -> None:
    async with memory(clock) as store:
        await run(store, "m1", ["done"])
        async with store.batch("g", owner="m2") as batch:
            await batch.claim(["done", "k"])
            with pytest.raises(IdempotencyStoreError, match="not pending"):
                batch.unit("done")
            with pytest.raises(IdempotencyStoreError, match="not pending"):
                batch.unit("never-claimed")
            with pytest.raises(IdempotencyStoreError, match="not pending"):
                batch.complete("never-claimed")
            async with batch.unit("k"):
                pass
            with pytest.raises(IdempotencyStoreError, match="already completed"):
                batch.unit("k")


async def test_unit_has_no_database_without_a_transaction(clock: Clock) -> None:
    async with memory(clock) as store, store.batch("g", owner="m") as batch:
        await batch.claim(["k"])
        async with batch.unit("k") as unit:
            assert not unit.transactional
            with pytest.raises(StoreNotTransactional, match="not transactional"):
                await unit.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(ResourceStateError, match="not open"):
            await unit.fetch("SELECT 1")
        with pytest.raises(ResourceStateError, match="entered once"):
            await unit.__aenter__()


async def test_memory_store_refuses_transactional_batches(clock: Clock) -> None:
    async with memory(clock) as store:
        assert not store.transactional
        with pytest.raises(StoreNotTransactional, match="transactional=False"):
            store.batch("g", owner="m", transactional=True)


async def test_batch_exit_while_a_unit_runs_is_an_error(clock: Clock) -> None:
    async with memory(clock) as store:
        batch = store.batch("g", owner="m")
        await batch.__aenter__()
        await batch.claim(["a", "b"])
        batch.complete("a")
        unit = batch.unit("b")
        await unit.__aenter__()
        with pytest.raises(IdempotencyStoreError, match="still ran"):
            await batch.__aexit__(None, None, None)
        with pytest.raises(ResourceStateError, match="batch ended"):
            await unit.__aexit__(None, None, None)
        assert (await store.lookup("g", ["a"]))["a"].done
        assert await store.lookup("g", ["b"]) == {}


async def test_batch_states(clock: Clock) -> None:
    async with memory(clock) as store:
        batch = store.batch("g", owner="m")
        with pytest.raises(ResourceStateError, match="never entered"):
            await batch.claim(["k"])
        async with batch:
            with pytest.raises(ResourceStateError, match="entered once"):
                await batch.__aenter__()
        with pytest.raises(ResourceStateError, match="has ended"):
            batch.unit("k")
        with pytest.raises(ResourceStateError, match="has ended"):
            await batch.renew()


async def test_store_states(clock: Clock) -> None:
    store = memory(clock)
    with pytest.raises(ResourceStateError, match="not started"):
        store.batch("g", owner="m")
    async with store:
        await store.start()  # idempotent while started
        assert store.started
    await store.close()  # idempotent
    with pytest.raises(ResourceStateError, match="closed"):
        await store.lookup("g", ["k"])
    with pytest.raises(ResourceStateError, match="closed"):
        await store.start()


async def test_arguments_are_checked(clock: Clock) -> None:
    async with memory(clock) as store:
        with pytest.raises(ConfigurationError, match="group"):
            store.batch("", owner="m")
        with pytest.raises(ConfigurationError, match="owner"):
            store.batch("g", owner="")
        with pytest.raises(ConfigurationError, match="lease"):
            store.batch("g", owner="m", lease=0)
        async with store.batch("g", owner="m") as batch:
            with pytest.raises(TypeError, match="strings"):
                await batch.claim([b"bytes"])  # type: ignore[list-item]
    for bad in ({"lease": -1}, {"ttl": 0}, {"purge_interval": 0}, {"lease": True}):
        with pytest.raises(ConfigurationError):
            MemoryStore(**bad)


async def test_unclosed_store_warns(clock: Clock) -> None:
    store = memory(clock)
    await store.start()
    holder = [store]
    del store
    with pytest.warns(ResourceWarning, match="unclosed MemoryStore"):
        holder.clear()  # the last reference: CPython finalises the store here
    gc.collect()


async def test_stores_batches_and_units_satisfy_the_protocols(clock: Clock) -> None:
    async with memory(clock) as store:
        assert isinstance(store, IdempotencyStore)
        async with store.batch("g", owner="m") as batch:
            assert isinstance(batch, Batch)
            await batch.claim(["k"])
            async with batch.unit("k") as unit:
                assert isinstance(unit, Unit)
                assert unit.key == "k"


def test_owner_ids_are_unique_and_name_the_process() -> None:
    first, second = new_owner_id(), new_owner_id()
    assert first != second
    assert f"-{os.getpid()}-" in first


async def test_claiming_a_large_poll_is_fast(clock: Clock) -> None:
    keys = [f"k{i}" for i in range(20_000)]
    async with memory(clock) as store:
        started = time.perf_counter()
        claim = await run(store, "m", keys)
        assert len(claim.fresh) == 20_000
        assert time.perf_counter() - started < 5
