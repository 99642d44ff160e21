"""Deadlines of many futures that share one timeout, enforced by one watching task.

``asyncio.wait_for``, ``asyncio.wait(timeout=…)`` and ``asyncio.timeout`` arm and cancel a
timer handle per call, plus a waiter future or a ``Timeout`` object: ~4 µs and several
garbage-collected objects per call on CPython 3.11, a tenth of the per-event publish path and
more of a webhook request's. When every future of a component has the same timeout, their
deadlines fall due in the order they were set, and one task watching a FIFO queue enforces
them all: it wakes at the oldest deadline (and at least every ``tick`` seconds, to drop
settled entries) and expires each future still waiting.

This is the one way eventplatform bounds a call's time on the publish paths: the producer's
``publish()``, ``publish_batch``, ``send_raw`` and ``send_raw_batch`` (:meth:`Deadlines.wait`)
and the webhook ingress's answers (:meth:`Deadlines.track` with :func:`time_out`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["Deadlines", "all_acknowledged", "cancel", "time_out"]

T = TypeVar("T")


def cancel(future: asyncio.Future[Any]) -> None:
    """Expire ``future`` by cancelling it (its awaiter tells a deadline from its own cancel)."""
    future.cancel()


def time_out(future: asyncio.Future[Any]) -> None:
    """Expire ``future`` by failing it with :class:`TimeoutError`."""
    future.set_exception(TimeoutError())


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # marks a failure as seen: its first waiter already reported one


async def all_acknowledged(futures: list[asyncio.Future[T]], within: float) -> list[T]:
    """Wait until every one of ``futures`` is done, within ``within`` seconds in all.

    What ``asyncio.wait_for(asyncio.gather(*futures), timeout)`` means, without its flaw on
    CPython 3.11: when the timeout or a cancellation cancels the gathering future, the
    gather's children report ``CancelledError`` into it after ``wait_for`` stopped looking,
    and the loop logs "_GatheringFuture exception was never retrieved" at shutdown. Here every
    failure is retrieved; futures still pending at the deadline or on cancellation are
    cancelled, as ``gather`` would.

    Raises:
        TimeoutError: some were still pending at the deadline.
        asyncio.CancelledError: the caller was cancelled.
        The first failure, in the order of ``futures``.
    """
    if not futures:
        return []
    for future in futures:
        future.add_done_callback(_retrieve)
    try:
        _, pending = await asyncio.wait(
            futures, timeout=within, return_when=asyncio.FIRST_EXCEPTION
        )
    except asyncio.CancelledError:
        for future in futures:
            future.cancel()
        raise
    for future in futures:
        error = future.exception() if future.done() and not future.cancelled() else None
        if error is not None:
            raise error
    if pending:
        for future in pending:
            future.cancel()
        raise TimeoutError
    return [future.result() for future in futures]


class Deadlines:
    """Futures that must be done within ``timeout`` seconds of being tracked.

    Args:
        timeout: seconds each tracked future gets.
        expire: what is done to a future still pending at its deadline (:func:`cancel`, the
            default, or :func:`time_out`).
        tick: the longest the watcher sleeps, so that settled entries do not pile up.
    """

    def __init__(
        self,
        timeout: float,
        *,
        expire: Callable[[asyncio.Future[Any]], None] = cancel,
        tick: float = 0.05,
    ) -> None:
        self.timeout = timeout
        self._expire_one = expire
        self._tick = tick
        self._queue: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self._task: asyncio.Task[None] | None = None

    def track(self, future: asyncio.Future[Any]) -> None:
        """Expire ``future`` if it is not done within the timeout."""
        loop = asyncio.get_running_loop()
        self._queue.append((loop.time() + self.timeout, future))
        if self._task is None:
            self._task = loop.create_task(self._expire(loop), name="eventplatform.deadlines")

    async def wait(self, future: asyncio.Future[T]) -> T:
        """Await ``future``, bounded by the timeout.

        Raises:
            TimeoutError: its deadline passed first (the future was expired).
            asyncio.CancelledError: the caller was cancelled.
            Whatever ``future`` fails with.
        """
        self.track(future)
        try:
            return await future
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # the caller was cancelled
            # Nothing but the watcher cancels a tracked future.
            raise TimeoutError from None

    async def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        queue = self._queue
        try:
            while queue:
                deadline, future = queue[0]
                if future.done():
                    queue.popleft()
                    continue
                delay = deadline - loop.time()
                if delay > 0:
                    await asyncio.sleep(min(delay, self._tick))
                    continue
                queue.popleft()
                self._expire_one(future)
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    async def aclose(self) -> None:
        """Stop watching (the futures still queued are left to their owners)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._queue.clear()
