"""Waiting in tests: poll the real condition until a deadline, never sleep a fixed time.

A fixed sleep ("let the record settle") is a guess about how fast the machine is; on a busy
machine the guess is wrong and the test fails, or passes without testing anything. Every
test (unit and integration) waits with :func:`until` instead. To show that something does
*not* happen, wait for a positive marker that comes after it (a sentinel record, a later
statement, a second connector that did restart) and then check that nothing else arrived.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

__all__ = ["until"]


async def until(
    predicate: Callable[[], bool | Awaitable[bool]],
    *,
    within: float = 20.0,
    what: str = "the condition",
    interval: float = 0.02,
    abort: Callable[[], str | None] | None = None,
    details: Callable[[], str] | None = None,
) -> None:
    """Poll ``predicate`` (plain or async) until it holds.

    Args:
        predicate: the condition; called at once, then every ``interval`` seconds.
        within: seconds before the test fails.
        what: what is awaited, for the failure message.
        interval: seconds between two polls.
        abort: returns why waiting is pointless (e.g. a watched process died), else None.
        details: text appended to the failure message (e.g. the tails of process logs).

    Raises:
        AssertionError: ``within`` seconds passed, or ``abort`` gave a reason.
    """
    deadline = time.monotonic() + within
    while True:
        held = predicate()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        why = abort() if abort is not None else None
        if why is None and time.monotonic() > deadline:
            why = f"timed out after {within:g}s"
        if why is not None:
            extra = f"\n{details()}" if details is not None else ""
            raise AssertionError(f"{why} waiting for {what}{extra}")
        await asyncio.sleep(interval)
