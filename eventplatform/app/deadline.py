"""Handler timeouts for one worker's successive calls, on one lazily re-armed timer.

``asyncio.timeout`` schedules a timer per call and cancels it when the call returns: a heap
push, a ``TimerHandle`` and a ``Timeout`` object per consumed event, most of the dispatch
path's overhead once the handler itself is cheap. :class:`Deadlines` serves a worker's calls,
one at a time, with a single timer: a call only records its deadline; the timer, when it
fires, cancels the call if that call is past its deadline, re-arms itself for the current
call's deadline if not, and lapses when no call is running. A timer is therefore scheduled
about once per timeout period (or when a call's deadline is earlier than the armed one), not
once per call.

The semantics are ``asyncio.timeout``'s: the expired call's task is cancelled, and the
``CancelledError`` that comes out of the call becomes :class:`HandlerTimeout` unless the task
was also cancelled from outside (then it propagates); a handler that swallows
``CancelledError`` defeats it, as it defeats ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from eventplatform.errors import HandlerTimeout

__all__ = ["Deadlines"]


class Deadlines:
    """The timeouts of one task's handler calls, which run one after another (not nested)."""

    __slots__ = ("_armed", "_due", "_expired", "_handle", "_loop", "_running", "_task")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[Any] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._armed = 0.0  # when the timer fires
        self._due = 0.0  # the running call's deadline
        self._running = False
        self._expired = False

    async def call(self, name: str, seconds: float, call: Awaitable[None]) -> None:
        """Await ``call`` (``name``'s), cancelling it after ``seconds``.

        Raises:
            HandlerTimeout: the call ran past ``timeout`` and was cancelled.
            RuntimeError: the call raised the ``CancelledError`` of something it awaited
                while its task was not being cancelled (a failure like any other).
        """
        task = self._task
        if task is None:
            task = self._task = asyncio.current_task()
            assert task is not None
        due = self._loop.time() + seconds
        self._due = due
        if self._handle is None or self._armed > due:
            self._arm(due)
        cancelling = task.cancelling()
        self._expired = False
        self._running = True
        try:
            await call
        except asyncio.CancelledError as exc:
            if self._expired:
                self._expired = False
                if task.uncancel() <= cancelling:
                    raise HandlerTimeout(
                        f"{name} did not finish within {seconds:g}s and was cancelled",
                        timeout=seconds,
                    ) from exc
            if task.cancelling():
                raise  # the task itself is being cancelled
            # The call awaited something that was cancelled: a failure like any other.
            raise RuntimeError(f"{name} raised CancelledError: {exc!r}") from exc
        finally:
            self._running = False
            if self._expired:  # expired, but the call did not raise CancelledError
                self._expired = False
                task.uncancel()

    def close(self) -> None:
        """Cancel the timer (the worker has no more calls to make)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        if not self._running:
            return  # no call runs: the next one arms the timer again
        if self._due <= self._armed:
            assert self._task is not None
            self._expired = True
            self._task.cancel()
        else:
            self._arm(self._due)
