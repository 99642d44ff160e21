"""Exceptions a handler raises to steer the loop rather than to report a failure.

They are control flow, not errors of the library, so they do not derive from
:class:`~eventplatform.errors.EventPlatformError`; the loop catches them around every handler
call::

    @app.handle(OrderPlaced)
    async def on_order(event: OrderPlaced, ctx: Context) -> None:
        if event.test_order:
            raise SkipEvent("test orders are not billed")
        if not await billing.ready():
            raise RetryLater(after=5.0, reason="billing warming up")
        ...
"""

from __future__ import annotations

__all__ = ["HandlerSignal", "RetryLater", "SkipEvent"]


class HandlerSignal(Exception):
    """Base of the exceptions a handler raises to tell the loop what to do with an event."""


class SkipEvent(HandlerSignal):
    """Count the event as handled without effects: no retry, no dead letter.

    Writes the handler made through ``ctx.transaction`` are rolled back (the exception leaves
    the unit), and the idempotency key is recorded as done, so a duplicate of the event is
    skipped too. Its offset is committed.

    Args:
        reason: why, for the log.
    """

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class RetryLater(HandlerSignal):
    """Run the event again after ``after`` seconds; it counts as one failed attempt.

    Events of the same key wait behind it (their order is kept); other keys carry on. Once the
    handler's ``max_attempts`` are used up the event goes to the dead-letter topic, like any
    failure. Writes made through ``ctx.transaction`` are rolled back.

    Args:
        after: seconds to wait before the next attempt; None uses the handler's exponential
            backoff.
        reason: why, for the log and the dead-letter headers.

    Raises:
        ValueError: ``after`` is negative.
    """

    def __init__(self, after: float | None = None, *, reason: str = "") -> None:
        if after is not None and after < 0:
            raise ValueError(f"RetryLater(after=...) must be >= 0 seconds, got {after!r}")
        message = reason or (f"retry in {after:g}s" if after is not None else "retry later")
        super().__init__(message)
        self.after = after
        self.reason = reason
