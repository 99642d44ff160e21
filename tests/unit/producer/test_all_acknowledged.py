"""``all_acknowledged``: many acknowledgements under one timeout, every failure retrieved.

Its reason to exist is what ``asyncio.wait_for(asyncio.gather(...))`` leaves behind on CPython
3.11 when it times out or is cancelled: a gathering future whose ``CancelledError`` nobody
retrieves, logged as "exception was never retrieved" when it is collected (it broke an
``up`` shutdown check). The tests collect garbage and look at what the loop reported.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from eventplatform.producer.deadlines import all_acknowledged


async def _unretrieved(loop: asyncio.AbstractEventLoop) -> list[dict[str, Any]]:
    """Let pending callbacks run, collect garbage; return what the loop's exception handler
    received meanwhile."""
    seen: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    for _ in range(3):
        await asyncio.sleep(0)
    gc.collect()
    return seen


async def test_results_come_back_in_the_order_of_the_futures() -> None:
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    loop.call_soon(second.set_result, 2)
    loop.call_soon(first.set_result, 1)
    assert await all_acknowledged([first, second], 5) == [1, 2]
    assert await all_acknowledged([], 5) == []


async def test_the_first_failure_is_raised_and_every_failure_retrieved() -> None:
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(3)]
    futures[1].set_exception(ValueError("refused"))
    with pytest.raises(ValueError, match="refused"):
        await all_acknowledged(futures, 5)
    futures[2].set_exception(KeyError("late"))  # fails after the caller gave up
    futures[0].set_result(None)
    await asyncio.sleep(0)  # let the done callbacks run
    del futures
    assert await _unretrieved(loop) == []


async def test_a_timeout_cancels_the_pending_and_leaves_nothing_unretrieved() -> None:
    loop = asyncio.get_running_loop()
    done, pending = loop.create_future(), loop.create_future()
    done.set_result("ok")
    with pytest.raises(TimeoutError):
        await all_acknowledged([done, pending], 0.01)
    assert pending.cancelled()
    del done, pending
    assert await _unretrieved(loop) == []


async def test_a_cancelled_caller_cancels_the_pending_and_leaves_nothing_unretrieved() -> None:
    loop = asyncio.get_running_loop()
    pending = [loop.create_future(), loop.create_future()]
    waiter = asyncio.create_task(all_acknowledged(pending, 60))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert all(future.cancelled() for future in pending)
    del pending, waiter
    assert await _unretrieved(loop) == []


async def test_wait_for_gather_is_what_it_replaces() -> None:
    """The flaw itself, so that this module's reason is checked, not assumed: a caller
    cancelled while ``wait_for`` waits on a gather (``up`` stopping a connector)."""
    loop = asyncio.get_running_loop()
    pending = [loop.create_future()]
    waiter = asyncio.create_task(asyncio.wait_for(asyncio.gather(*pending), 60))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    del pending, waiter
    assert any("never retrieved" in str(c.get("message")) for c in await _unretrieved(loop))
