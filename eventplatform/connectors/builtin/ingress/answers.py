"""The answers an ingress gave to requests with an idempotency key, kept for their retries.

A sender that did not get (or did not trust) an answer sends the request again with the same
``webhook-id`` (Standard Webhooks) or ``Idempotency-Key`` (IETF draft
``draft-ietf-httpapi-idempotency-key-header``). The ingress answers such a retry with the
first answer and writes nothing new: :class:`AnswerCache` keeps accepted answers in memory,
least recently used first out, each for ``ttl`` seconds, and remembers a digest of the request
body so that a key reused for a *different* body is refused (the draft's 422) rather than
answered as a replay. Requests with a key still being published share the first one's
outcome instead of publishing twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Answer", "AnswerCache", "body_digest"]


def body_digest(body: bytes) -> bytes:
    """The digest a body is recognised by."""
    return hashlib.sha256(body).digest()


@dataclass(frozen=True, slots=True)
class Answer:
    """An accepted request's answer.

    Attributes:
        event_id: the id of the event it published.
        digest: :func:`body_digest` of its body; empty when unknown (answers recovered from a
            persistent store after a restart).
    """

    event_id: str
    digest: bytes = b""


class AnswerCache:
    """Accepted answers by key, bounded in count and age, plus the requests in flight.

    Args:
        max_entries: answers kept at most; the least recently used go first.
        ttl: seconds an answer is kept.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        *,
        max_entries: int = 100_000,
        ttl: float = 86_400.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._answers: OrderedDict[str, tuple[float, Answer]] = OrderedDict()
        self._in_flight: dict[str, tuple[bytes, asyncio.Future[Answer]]] = {}

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: str) -> Answer | None:
        """The answer kept for ``key``, or None (also once it expired)."""
        entry = self._answers.get(key)
        if entry is None:
            return None
        expires, answer = entry
        if expires <= self._clock():
            del self._answers[key]
            return None
        self._answers.move_to_end(key)
        return answer

    def put(self, key: str, answer: Answer) -> None:
        """Keep ``answer`` for ``key``."""
        self._answers[key] = (self._clock() + self.ttl, answer)
        self._answers.move_to_end(key)
        while len(self._answers) > self.max_entries:
            self._answers.popitem(last=False)

    def in_flight(self, key: str) -> tuple[bytes, asyncio.Future[Answer]] | None:
        """``(digest, outcome)`` of the request with ``key`` being published, or None."""
        return self._in_flight.get(key)

    def begin(self, key: str, digest: bytes) -> asyncio.Future[Answer]:
        """Register the request with ``key`` as in flight; resolve the future when answered."""
        outcome: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = (digest, outcome)

        def finished(future: asyncio.Future[Answer]) -> None:
            if self._in_flight.get(key, (b"", None))[1] is future:
                del self._in_flight[key]
            if not future.cancelled() and future.exception() is None:
                self.put(key, future.result())

        outcome.add_done_callback(finished)
        return outcome
