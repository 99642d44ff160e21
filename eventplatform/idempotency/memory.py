"""An idempotency store in a dict: for tests, examples and single-process tools.

It keeps the same lease, TTL and purge semantics as the database stores, so the contract
suite runs against it unchanged, but it forgets everything when the process ends and cannot
hold a handler's writes: its batches are always non-transactional (claims take effect at once,
done-marks are recorded when the batch exits). Time comes from the injectable ``clock``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass

from eventplatform.idempotency.base import (
    DEFAULT_PURGE_BATCH,
    DEFAULT_PURGE_INTERVAL,
    Clock,
    KeyRecord,
)
from eventplatform.idempotency.batch import BaseBatch
from eventplatform.idempotency.store import BaseStore

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _Record:
    owner: str
    lease_until: float | None
    done_at: float | None
    expires_at: float


class MemoryStore(BaseStore):
    """Idempotency keys in process memory.

    Args:
        lease: seconds a claim keeps other owners away (default 30).
        ttl: seconds a done key is remembered (default 7 days).
        purge_interval: seconds between background purges; None disables them.
        purge_batch: records deleted per purge step.
        clock: seconds since the epoch; ``time.time`` when None.

    Raises:
        ConfigurationError: a setting is not positive.
    """

    _transactional = False

    def __init__(
        self,
        *,
        lease: float | None = None,
        ttl: float | None = None,
        purge_interval: float | None = DEFAULT_PURGE_INTERVAL,
        purge_batch: int = DEFAULT_PURGE_BATCH,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(
            lease=lease,
            ttl=ttl,
            purge_interval=purge_interval,
            purge_batch=purge_batch,
            clock=clock,
        )
        self._records: dict[tuple[str, str], _Record] = {}
        # (expires_at, group, key) of every record written; entries whose record has since
        # changed are stale and skipped when popped, which keeps each write O(log n).
        self._expiry: list[tuple[float, str, str]] = []

    def __repr__(self) -> str:
        return f"<MemoryStore keys={len(self._records)}>"

    async def _open(self) -> None:
        pass

    async def _close(self) -> None:
        pass

    def _new_batch(self, group: str, owner: str, lease: float, transactional: bool) -> BaseBatch:
        return _MemoryBatch(self, group=group, owner=owner, lease=lease)

    async def _lookup(self, group: str, keys: list[str]) -> dict[str, KeyRecord]:
        found: dict[str, KeyRecord] = {}
        for key in keys:
            rec = self._records.get((group, key))
            if rec is not None:
                found[key] = KeyRecord(
                    group, key, rec.owner, rec.lease_until, rec.done_at, rec.expires_at
                )
        return found

    async def _purge_chunk(self, limit: int) -> int:
        now = self.now()
        deleted = 0
        expiry = self._expiry
        while expiry and deleted < limit and expiry[0][0] <= now:
            _, group, key = heapq.heappop(expiry)
            rec = self._records.get((group, key))
            if rec is not None and rec.expires_at <= now:
                del self._records[(group, key)]
                deleted += 1
        return deleted

    def _write(self, group: str, key: str, rec: _Record) -> None:
        self._records[(group, key)] = rec
        heapq.heappush(self._expiry, (rec.expires_at, group, key))

    def _claim_keys(
        self, group: str, owner: str, keys: Iterable[str], lease: float
    ) -> tuple[frozenset[str], frozenset[str]]:
        """Claim ``keys`` for ``owner``; return (fresh, done). Used by the store's batches."""
        now = self.now()
        fresh: set[str] = set()
        done: set[str] = set()
        for key in keys:
            rec = self._records.get((group, key))
            if rec is None or _claimable(rec, owner, now):
                lease_until = now + lease
                self._write(group, key, _Record(owner, lease_until, None, lease_until + self.ttl))
                fresh.add(key)
            elif rec.done_at is not None:
                done.add(key)
        return frozenset(fresh), frozenset(done)

    def _settle_keys(
        self, group: str, owner: str, completed: Iterable[str], pending: Iterable[str]
    ) -> frozenset[str]:
        """Mark ``completed`` done and release ``pending``; return the keys no longer ours."""
        now = self.now()
        lost: set[str] = set()
        for key in completed:
            rec = self._records.get((group, key))
            if rec is not None and rec.owner == owner and rec.done_at is None:
                self._write(group, key, _Record(owner, None, now, now + self.ttl))
            else:
                lost.add(key)
        for key in pending:
            rec = self._records.get((group, key))
            if rec is not None and rec.owner == owner and rec.done_at is None:
                del self._records[(group, key)]
        return frozenset(lost)

    def _renew_keys(
        self, group: str, owner: str, keys: Iterable[str], lease: float
    ) -> frozenset[str]:
        """Extend ``owner``'s leases on ``keys``; return the keys still held."""
        now = self.now()
        held: set[str] = set()
        for key in keys:
            rec = self._records.get((group, key))
            if rec is not None and rec.owner == owner and rec.done_at is None:
                lease_until = now + lease
                self._write(group, key, _Record(owner, lease_until, None, lease_until + self.ttl))
                held.add(key)
        return frozenset(held)


def _claimable(rec: _Record, owner: str, now: float) -> bool:
    # Expired records count as absent whether or not a purge has removed them yet, so that
    # when purges run never changes what a claim decides. A live lease is re-entrant for its
    # own owner: a member retrying after a failed settle need not wait for its own lease.
    if rec.expires_at <= now:
        return True
    if rec.done_at is not None:
        return False
    return rec.owner == owner or rec.lease_until is None or rec.lease_until <= now


class _MemoryBatch(BaseBatch):
    def __init__(self, store: MemoryStore, *, group: str, owner: str, lease: float) -> None:
        super().__init__(group=group, owner=owner, lease=lease, transactional=False)
        self._store = store

    async def _claim(self, keys: list[str]) -> tuple[frozenset[str], frozenset[str]]:
        return self._store._claim_keys(self.group, self.owner, keys, self.lease)

    async def _renew(self, keys: tuple[str, ...]) -> frozenset[str]:
        return self._store._renew_keys(self.group, self.owner, keys, self.lease)

    async def _commit(self, completed: tuple[str, ...], pending: tuple[str, ...]) -> frozenset[str]:
        return self._store._settle_keys(self.group, self.owner, completed, pending)

    async def _rollback(self) -> None:  # pragma: no cover - never transactional
        raise AssertionError("memory batches are never transactional")
