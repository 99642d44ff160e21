"""Handler timeouts on one timer per worker: asyncio.timeout's semantics, call after call."""

from __future__ import annotations

import asyncio

import pytest

from eventplatform.app.deadline import Deadlines
from eventplatform.errors import HandlerTimeout


async def test_a_call_past_its_timeout_is_cancelled_as_a_handler_timeout() -> None:
    deadlines = Deadlines()
    cancelled = []

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    with pytest.raises(HandlerTimeout, match=r"slow did not finish within 0\.05s"):
        await deadlines.call("slow", 0.05, slow())
    assert cancelled == [True]
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0  # the expiry's cancel was taken back
    deadlines.close()


async def test_fast_calls_share_the_timer_and_a_later_slow_call_still_times_out() -> None:
    deadlines = Deadlines()
    for _ in range(50):
        await deadlines.call("fast", 0.05, asyncio.sleep(0))
    await asyncio.sleep(0.08)  # the armed timer fires while no call runs, and lapses
    await deadlines.call("fast", 0.05, asyncio.sleep(0.01))
    with pytest.raises(HandlerTimeout):
        await deadlines.call("slow", 0.05, asyncio.sleep(10))
    deadlines.close()


async def test_a_call_with_an_earlier_deadline_than_the_armed_timer_times_out_on_time() -> None:
    deadlines = Deadlines()
    await deadlines.call("patient", 30.0, asyncio.sleep(0))  # arms the timer 30 s ahead
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(HandlerTimeout):
        await deadlines.call("hasty", 0.05, asyncio.sleep(10))
    assert loop.time() - started < 5.0
    deadlines.close()


async def test_the_handlers_own_timeout_and_errors_pass_through() -> None:
    deadlines = Deadlines()

    async def own_timeout() -> None:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(10)

    with pytest.raises(TimeoutError):
        await deadlines.call("own", 5.0, own_timeout())

    async def fails() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await deadlines.call("fails", 5.0, fails())
    deadlines.close()


async def test_a_cancel_from_outside_propagates_as_cancellation() -> None:
    async def worker() -> None:
        deadlines = Deadlines()
        try:
            await deadlines.call("slow", 5.0, asyncio.sleep(10))
        finally:
            deadlines.close()

    task = asyncio.create_task(worker())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_cancellation_of_something_the_call_awaited_is_a_failure_of_the_call() -> None:
    deadlines = Deadlines()

    async def awaits_a_cancelled_future() -> None:
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        await future

    with pytest.raises(RuntimeError, match="awaits raised CancelledError"):
        await deadlines.call("awaits", 5.0, awaits_a_cancelled_future())
    deadlines.close()
