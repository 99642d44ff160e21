"""The shared wait of the tests: a condition polled until a deadline, never a fixed sleep."""

from __future__ import annotations

import time

import pytest

from tests.waiting import until


async def test_a_plain_condition_is_polled_until_it_holds() -> None:
    calls: list[int] = []

    def third_time() -> bool:
        calls.append(1)
        return len(calls) == 3

    await until(third_time, within=5, interval=0)
    assert len(calls) == 3


async def test_an_async_condition_is_awaited() -> None:
    seen: list[int] = []

    async def second_time() -> bool:
        seen.append(1)
        return len(seen) >= 2

    await until(second_time, within=5, interval=0)
    assert seen == [1, 1]


async def test_the_deadline_fails_the_test_naming_what_and_the_details() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"timed out after 0.1s waiting for the moon\nlogs"):
        await until(lambda: False, within=0.1, what="the moon", details=lambda: "logs")
    assert time.monotonic() - started >= 0.1


async def test_abort_ends_the_wait_before_the_deadline() -> None:
    started = time.monotonic()
    with pytest.raises(AssertionError, match="process died waiting for ready"):
        await until(lambda: False, within=60, what="ready", abort=lambda: "process died")
    assert time.monotonic() - started < 30
