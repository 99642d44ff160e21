"""``PollState``: what a poll knows about its keys, and the only way it learns more."""

from __future__ import annotations

import pytest

from eventplatform.app.delivery import Outcome
from eventplatform.app.poll import PollState
from eventplatform.errors import ResourceStateError
from eventplatform.idempotency import MemoryStore


async def test_keys_are_run_skipped_as_done_or_deferred_as_the_claim_decided() -> None:
    async with MemoryStore() as store, store.batch("g", owner="another") as other:
        await other.claim(["busy"])
        async with store.batch("g", owner="first") as earlier:
            await earlier.claim(["old"])
            earlier.complete("old")
        async with store.batch("g", owner="me") as batch:
            poll = PollState([], set())
            with pytest.raises(ResourceStateError):
                _ = poll.batch
            poll.open(batch, await batch.claim(["new", "old", "busy"]), None)

            assert poll.check("new") is None
            assert poll.check("old") is Outcome.DUPLICATE
            assert poll.check("busy") is Outcome.DEFERRED

            poll.finish("new", in_transaction=False, skipped=False)
            assert poll.check("new") is Outcome.DUPLICATE  # a second record of the key
            assert batch.completed == frozenset({"new"})


async def test_keys_of_a_transaction_are_done_only_once_it_commits() -> None:
    async with MemoryStore() as store, store.batch("g", owner="me") as batch:
        poll = PollState([], set())
        poll.open(batch, await batch.claim(["a", "b"]), None)
        poll.finish("a", in_transaction=True, skipped=False)
        poll.finish("b", in_transaction=False, skipped=True)
        assert batch.completed == frozenset({"b"})
        assert not poll.committed

        poll.transaction_committed()

        assert poll.committed
        assert batch.completed == frozenset({"a", "b"})
