"""The ingress's answers to keyed requests: kept by age and count, shared while in flight."""

from __future__ import annotations

import pytest

from eventplatform.connectors.builtin.ingress.answers import (
    Answer,
    AnswerCache,
    body_digest,
)
from eventplatform.errors import PublishTimeout
from tests.waiting import until


def test_answers_expire_and_the_least_recently_used_go_first() -> None:
    now = [0.0]
    cache = AnswerCache(max_entries=2, ttl=10, clock=lambda: now[0])
    cache.put("a", Answer("id-a"))
    cache.put("b", Answer("id-b"))
    assert cache.get("a") == Answer("id-a")  # a is now the most recently used
    cache.put("c", Answer("id-c"))
    assert cache.get("b") is None
    assert len(cache) == 2
    now[0] = 11
    assert cache.get("a") is None
    assert cache.get("c") is None


async def test_a_request_in_flight_is_shared_and_kept_once_answered() -> None:
    cache = AnswerCache()
    digest = body_digest(b"{}")
    outcome = cache.begin("k", digest)
    assert cache.in_flight("k") == (digest, outcome)
    outcome.set_result(Answer("id-k", digest))
    # Done callbacks run on a later loop iteration.
    await until(lambda: cache.in_flight("k") is None, what="the answer to be kept")
    assert cache.get("k") == Answer("id-k", digest)


async def test_a_failed_request_is_not_kept() -> None:
    cache = AnswerCache()
    outcome = cache.begin("k", b"")
    outcome.set_exception(PublishTimeout("down"))
    with pytest.raises(PublishTimeout):
        await outcome
    await until(lambda: cache.in_flight("k") is None, what="the request to be dropped")
    assert cache.get("k") is None
