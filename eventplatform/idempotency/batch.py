"""The batch and unit bookkeeping every store shares; stores supply the database hooks.

A :class:`BaseBatch` tracks which of its keys are pending (claimed, not completed) and which
completed, enforces the open/closed states, and decides what exit means: a transactional batch
commits or rolls back; a non-transactional one always records its completed keys, because
their effects already happened outside any transaction. Stores override the ``_begin``,
``_claim``, ``_renew``, ``_commit``, ``_rollback`` and ``_end`` hooks, and give transactional
batches a :class:`BaseUnit` subclass whose hooks open, release and roll back a savepoint.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Self

from eventplatform.errors import IdempotencyStoreError, ResourceStateError, StoreNotTransactional
from eventplatform.idempotency.base import Claim

__all__ = ["BaseBatch", "BaseUnit"]

_NONE: frozenset[str] = frozenset()

log = logging.getLogger("eventplatform.idempotency")


class _State(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


class BaseUnit:
    """One key's work in a batch. Without a transaction it only reports success or failure.

    Subclasses for transactional batches override ``_execute``, ``_executemany``, ``_fetch``
    (each opens the savepoint on first use), ``_release`` and ``_rollback``.
    """

    def __init__(self, batch: BaseBatch, key: str) -> None:
        self._batch = batch
        self._key = key
        self._state = _State.NEW

    @property
    def key(self) -> str:
        """The idempotency key this unit runs."""
        return self._key

    @property
    def transactional(self) -> bool:
        """Whether :meth:`execute` and friends are available."""
        return self._batch.transactional

    def __repr__(self) -> str:
        return f"<{type(self).__name__} key={self._key!r} {self._state.value}>"

    async def __aenter__(self) -> Self:
        if self._state is not _State.NEW:
            raise ResourceStateError("a unit can be entered once; ask the batch for a new one")
        batch = self._batch
        if batch.transactional:
            # One connection, one savepoint stack: units of a transactional batch take turns.
            task = asyncio.current_task()
            if task is not None and batch._unit_holder is task:
                raise IdempotencyStoreError(
                    "units of a transactional batch cannot nest: this task already runs one"
                )
            await batch._unit_lock.acquire()
            batch._unit_holder = task
        try:
            batch._check_open()
            if self._key not in batch._pending:
                raise IdempotencyStoreError(
                    f"key {self._key!r} is no longer pending in this batch (completed or lost)"
                )
        except BaseException:
            if batch.transactional:
                batch._unit_holder = None
                batch._unit_lock.release()
            raise
        batch._running += 1
        self._state = _State.OPEN
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state is not _State.OPEN:
            return
        self._state = _State.CLOSED
        batch = self._batch
        try:
            batch._running -= 1
            if batch._state is not _State.OPEN:
                raise ResourceStateError(
                    f"the batch ended while the unit of key {self._key!r} ran; its effects "
                    "were not recorded (exit units before their batch)"
                )
            if exc is None:
                try:
                    await self._release()
                except BaseException:
                    await self._undo()
                    raise
                batch._mark_completed(self._key)
            else:
                await self._undo()
        finally:
            if batch.transactional:
                batch._unit_holder = None
                batch._unit_lock.release()

    async def _undo(self) -> None:
        """Roll the unit's writes back; when that fails, keep the batch from committing them.

        The failure is logged rather than raised so that the handler's own exception (or
        cancellation) is what the caller sees; the batch reports it when it ends.
        """
        try:
            await self._rollback()
        except Exception as err:
            self._batch._poisoned = True
            log.error("rolling back the unit of key %r failed: %s", self._key, err)

    def _check_db(self) -> None:
        if self._state is not _State.OPEN:
            raise ResourceStateError(f"the unit of key {self._key!r} is not open")
        if not self._batch.transactional:
            raise StoreNotTransactional(
                "this batch is not transactional: its units have no database transaction "
                "(open the batch with transactional=True on a SQLite or PostgreSQL store)"
            )

    async def execute(self, sql: str, *args: Any) -> None:
        """Run one statement in the batch's transaction, inside this unit's savepoint.

        Raises:
            StoreNotTransactional: the batch is not transactional.
            IdempotencyStoreError: the statement failed.
            IdempotencyStoreUnavailable: the database connection failed.
            ResourceStateError: the unit is not open.
        """
        self._check_db()
        await self._execute(sql, args)

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per argument tuple, as :meth:`execute` does.

        Raises:
            IdempotencyStoreError, IdempotencyStoreUnavailable, ResourceStateError: as
                :meth:`execute`.
        """
        self._check_db()
        await self._executemany(sql, [tuple(row) for row in args])

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run a query in the batch's transaction and return its rows.

        Raises:
            IdempotencyStoreError, IdempotencyStoreUnavailable, ResourceStateError: as
                :meth:`execute`.
        """
        self._check_db()
        return await self._fetch(sql, args)

    async def _execute(self, sql: str, args: tuple[Any, ...]) -> None:
        raise NotImplementedError  # only reachable in transactional batches, which override

    async def _executemany(self, sql: str, args: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    async def _fetch(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def _release(self) -> None:
        """Make the unit's writes part of the batch (release its savepoint, if opened)."""

    async def _rollback(self) -> None:
        """Undo the unit's writes (roll back to its savepoint, if opened)."""


class BaseBatch(ABC):
    """The state every store's batch keeps; subclasses implement the database hooks."""

    def __init__(self, *, group: str, owner: str, lease: float, transactional: bool) -> None:
        self._group = group
        self._owner = owner
        self.lease = lease
        self._transactional = transactional
        self._state = _State.NEW
        self._pending: dict[str, None] = {}  # insertion-ordered set
        self._completed: dict[str, None] = {}
        self._lost: frozenset[str] = frozenset()
        self._running = 0
        self._poisoned = False  # a unit's rollback failed: never commit this transaction
        self._unit_lock = asyncio.Lock()
        self._unit_holder: asyncio.Task[Any] | None = None

    @property
    def group(self) -> str:
        """The consumer group."""
        return self._group

    @property
    def owner(self) -> str:
        """The member holding the batch's claims."""
        return self._owner

    @property
    def transactional(self) -> bool:
        """Whether units can write in the batch's transaction."""
        return self._transactional

    @property
    def pending(self) -> frozenset[str]:
        """Keys claimed and not completed; released when the batch exits."""
        return frozenset(self._pending)

    @property
    def completed(self) -> frozenset[str]:
        """Keys completed in this batch (done once it commits)."""
        return frozenset(self._completed)

    @property
    def lost(self) -> frozenset[str]:
        """Keys whose lease passed to another owner before they were marked done."""
        return self._lost

    def __repr__(self) -> str:
        mode = "transactional" if self._transactional else "leased"
        return (
            f"<{type(self).__name__} group={self._group!r} owner={self._owner!r} {mode} "
            f"{self._state.value} pending={len(self._pending)} "
            f"completed={len(self._completed)}>"
        )

    def _check_open(self) -> None:
        if self._state is not _State.OPEN:
            what = "was never entered" if self._state is _State.NEW else "has ended"
            raise ResourceStateError(f"this batch {what}; use `async with store.batch(...)`")

    async def __aenter__(self) -> Self:
        if self._state is not _State.NEW:
            raise ResourceStateError("a batch can be entered once; ask the store for a new one")
        await self._begin()
        self._state = _State.OPEN
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state is not _State.OPEN:
            return
        running = self._running
        self._state = _State.CLOSED
        try:
            if running:
                # A unit still running may write after we commit, or its key may be released
                # while its effect runs: end the batch as if it had failed.
                failure = IdempotencyStoreError(
                    f"the batch ended while {running} unit(s) still ran; exit every unit "
                    "before its batch"
                )
                await self._end_failed(failure)
                raise failure
            if exc is None and self._poisoned:
                failure = IdempotencyStoreError(
                    "a unit's writes could not be rolled back, so the whole batch was rolled "
                    "back instead of committing them; retry the batch"
                )
                await self._end_failed(failure)
                raise failure
            if exc is None:
                lost = await self._commit(tuple(self._completed), tuple(self._pending))
                if lost:
                    self._lost = self._lost | lost
            else:
                await self._end_failed(exc)
        finally:
            await self._end()

    async def _end_failed(self, exc: BaseException) -> None:
        """End a batch whose body failed: roll back, or record what completed (no transaction)."""
        if self._transactional:
            try:
                await self._rollback()
            except Exception as err:
                # The body's exception is what the caller must see. The transaction cannot
                # commit anyway: _end hands the connection back to be reset.
                log.warning("rolling back a failed idempotency batch failed too: %s", err)
            return
        try:
            self._lost = self._lost | await self._commit(
                tuple(self._completed), tuple(self._pending)
            )
        except Exception:
            if isinstance(exc, Exception):
                raise  # chained to the body's error: the caller sees both
            # Cancellation or interpreter exit must stay what it is.
            log.error(
                "recording the completed keys of an interrupted idempotency batch failed; "
                "their effects may run again",
                exc_info=True,
            )

    async def claim(self, keys: Iterable[str]) -> Claim:
        """Claim a poll's keys in one round trip; repeated keys count once.

        Keys already pending in this batch come back fresh, keys completed in it done, without
        asking the database.

        Raises:
            IdempotencyConflict: keys stayed locked past the lock timeout, or a deadlock.
            IdempotencyStoreUnavailable: the database cannot be reached.
            IdempotencyStoreError: the database refused the statement.
            ResourceStateError: the batch is not open.
            TypeError: a key is not a string.
        """
        self._check_open()
        ordered = list(dict.fromkeys(keys))
        pending, completed = self._pending, self._completed
        ask: list[str] = []
        mine_done: list[str] = []
        for key in ordered:
            if not isinstance(key, str):
                raise TypeError(f"idempotency keys are strings, got {key!r}")
            if key in completed:
                mine_done.append(key)
            elif key not in pending:
                ask.append(key)
        done = busy = _NONE
        if ask:
            fresh, done = await self._claim(ask)
            for key in ask:
                if key in fresh:
                    pending[key] = None
            busy = frozenset(ask).difference(fresh, done)
        if mine_done:
            done = done.union(mine_done)
        return Claim(fresh=tuple(key for key in ordered if key in pending), done=done, busy=busy)

    def unit(self, key: str) -> BaseUnit:
        """The unit that runs ``key``; units of a transactional batch run one at a time.

        Raises:
            IdempotencyStoreError: ``key`` is not pending in this batch (never claimed, not
                fresh, or already completed).
            ResourceStateError: the batch is not open.
        """
        self._check_pending(key)
        return self._new_unit(key)

    def complete(self, key: str) -> None:
        """Mark a pending key done without a unit (e.g. after routing it to a dead-letter topic).

        Raises:
            IdempotencyStoreError: ``key`` is not pending in this batch.
            ResourceStateError: the batch is not open.
        """
        self._check_pending(key)
        self._mark_completed(key)

    async def renew(self) -> frozenset[str]:
        """Extend the leases of the keys this batch holds; return the keys already lost.

        Covers completed keys too: until the batch exits their done-marks are not written, and
        only the lease keeps another owner from running them again. A no-op in a
        transactional batch, whose locks hold until it ends.

        Raises:
            IdempotencyStoreUnavailable, IdempotencyStoreError: the update failed.
            ResourceStateError: the batch is not open.
        """
        self._check_open()
        held = (*self._pending, *self._completed)
        if self._transactional or not held:
            return frozenset()
        lost = frozenset(held) - await self._renew(held)
        for key in lost:
            self._pending.pop(key, None)
            self._completed.pop(key, None)
        self._lost = self._lost | lost
        return lost

    def _check_pending(self, key: str) -> None:
        self._check_open()
        if key in self._completed:
            raise IdempotencyStoreError(f"key {key!r} was already completed in this batch")
        if key not in self._pending:
            raise IdempotencyStoreError(
                f"key {key!r} is not pending in this batch: run only the keys claim() "
                "returned as fresh"
            )

    def _mark_completed(self, key: str) -> None:
        if key in self._pending:
            del self._pending[key]
            self._completed[key] = None

    def _new_unit(self, key: str) -> BaseUnit:
        """The unit for ``key``; transactional stores return their savepoint unit."""
        return BaseUnit(self, key)

    async def _begin(self) -> None:  # noqa: B027 - optional hook
        """Start the transaction (transactional batches); clean up after itself on failure."""

    @abstractmethod
    async def _claim(self, keys: list[str]) -> tuple[frozenset[str], frozenset[str]]:
        """Claim distinct ``keys`` in one round trip; return (fresh, done)."""

    @abstractmethod
    async def _renew(self, keys: tuple[str, ...]) -> frozenset[str]:
        """Extend the leases of ``keys`` still held by this owner; return those."""

    @abstractmethod
    async def _commit(self, completed: tuple[str, ...], pending: tuple[str, ...]) -> frozenset[str]:
        """Record ``completed`` as done, release ``pending``, commit; return lost keys."""

    @abstractmethod
    async def _rollback(self) -> None:
        """Roll the transaction back (transactional batches only)."""

    async def _end(self) -> None:  # noqa: B027 - optional hook
        """Release what the batch held (a connection, the store's lock); always called."""
