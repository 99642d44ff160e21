"""Which handler failures are retried, and how long to wait between attempts.

The rule, in one line: **an exception whose class says ``retriable = False`` goes to the
dead-letter topic at once; every other failure is retried with exponential backoff until the
handler's ``max_attempts`` are used up, and then goes there.**

- Retried: :class:`~eventplatform.errors.HandlerTimeout` (the handler ran past its timeout),
  :class:`~eventplatform.app.signals.RetryLater`, errors whose ``retriable`` is True
  (``PublishTimeout``, ``IdempotencyStoreUnavailable``, aiokafka's retriable errors),
  ``ConnectionError``/``OSError``, and any exception that does not classify itself. Unknown
  exceptions are retried rather than dead-lettered because most of them in handlers are
  transient (a dependency restarting, a lock timeout in the handler's own database) and a few
  seconds of backoff cost little, while a dead letter needs an operator.
- Dead-lettered at once: exceptions with a class attribute ``retriable = False``, which includes
  every :class:`~eventplatform.errors.EventPlatformError` that is not marked retriable
  (``SerializationError`` for an output event that does not fit its schema, ``PublishError``
  for a record the broker refuses, ``StoreNotTransactional`` …). An application marks its own
  permanent errors the same way::

      class InvalidOrder(Exception):
          retriable = False

The backoff is deterministic (no jitter): retries of one event are sequential and events of one
partition are handled by one member, so there is no herd of clients to spread out.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventplatform.app.signals import RetryLater
from eventplatform.settings import RetrySettings

__all__ = ["RetryPolicy", "is_retriable"]


def is_retriable(exc: BaseException) -> bool:
    """Whether a handler failure may succeed when tried again (see the module docstring)."""
    if isinstance(exc, RetryLater):
        return True
    flag = getattr(type(exc), "retriable", None)
    return flag is not False


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff for one handler: ``initial * multiplier**(n-1)``, capped.

    Attributes:
        max_attempts: runs of the handler in all, the first included (1 = no retry).
        initial_backoff: seconds before the second attempt.
        max_backoff: the longest wait between two attempts.
        multiplier: growth of the wait per failed attempt.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.2
    max_backoff: float = 10.0
    multiplier: float = 2.0

    @classmethod
    def from_settings(cls, settings: RetrySettings) -> RetryPolicy:
        """The policy of a :class:`~eventplatform.settings.RetrySettings` section."""
        return cls(
            max_attempts=settings.max_attempts,
            initial_backoff=settings.initial_backoff,
            max_backoff=settings.max_backoff,
            multiplier=settings.multiplier,
        )

    def backoff(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1-based)."""
        if failures < 1:
            return 0.0
        # Past ~60 doublings the product overflows a float long after it passed any cap.
        exponent = min(failures - 1, 64)
        return float(min(self.max_backoff, self.initial_backoff * self.multiplier**exponent))

    def next_delay(self, exc: BaseException, attempt: int) -> float | None:
        """Seconds before attempt ``attempt + 1`` after ``exc`` ended attempt ``attempt``.

        Returns:
            None when the event should be dead-lettered instead: the failure is permanent or
            this was the last attempt.
        """
        if attempt >= self.max_attempts or not is_retriable(exc):
            return None
        if isinstance(exc, RetryLater) and exc.after is not None:
            return exc.after
        return self.backoff(attempt)
