"""Retry policy: which failures are retried, and the backoff between attempts."""

from __future__ import annotations

import pytest

from eventplatform.app import RetryLater, RetryPolicy, is_retriable
from eventplatform.errors import (
    HandlerTimeout,
    IdempotencyStoreUnavailable,
    PublishError,
    PublishTimeout,
    SerializationError,
    StoreNotTransactional,
)
from eventplatform.settings import RetrySettings


class Permanent(Exception):
    retriable = False


def test_backoff_grows_exponentially_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=10, initial_backoff=0.1, max_backoff=1.0, multiplier=2.0)
    assert [policy.backoff(n) for n in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert policy.backoff(0) == 0.0
    assert policy.backoff(10_000) == 1.0


@pytest.mark.parametrize(
    "exc",
    [
        HandlerTimeout("slow", timeout=1.0),
        RetryLater(),
        PublishTimeout("no ack"),
        IdempotencyStoreUnavailable("db down"),
        ConnectionResetError("reset"),
        ValueError("anything that does not classify itself"),
    ],
)
def test_transient_and_unknown_failures_are_retried(exc: BaseException) -> None:
    assert is_retriable(exc)
    assert RetryPolicy(max_attempts=3).next_delay(exc, 1) is not None


@pytest.mark.parametrize(
    "exc",
    [
        Permanent("declined"),
        SerializationError("does not fit"),
        PublishError("too large"),
        StoreNotTransactional("memory store"),
    ],
)
def test_errors_that_say_they_are_permanent_are_dead_lettered_at_once(exc: BaseException) -> None:
    assert not is_retriable(exc)
    assert RetryPolicy(max_attempts=5).next_delay(exc, 1) is None


def test_the_last_attempt_is_not_retried() -> None:
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.5)
    assert policy.next_delay(RuntimeError(), 2) == 1.0
    assert policy.next_delay(RuntimeError(), 3) is None


def test_retry_later_overrides_the_backoff() -> None:
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.5)
    assert policy.next_delay(RetryLater(after=7.5), 1) == 7.5
    assert policy.next_delay(RetryLater(), 1) == 0.5
    with pytest.raises(ValueError, match=">= 0"):
        RetryLater(after=-1)


def test_policy_from_settings() -> None:
    settings = RetrySettings(max_attempts=2, initial_backoff=1, max_backoff=3, multiplier=3)
    assert RetryPolicy.from_settings(settings) == RetryPolicy(2, 1.0, 3.0, 3.0)
