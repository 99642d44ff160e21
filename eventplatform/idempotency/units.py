"""One key per transaction: the :class:`~eventplatform.idempotency.base.KeyUnit` every store has.

The generic form is a batch of one key: enter a batch, claim the key, enter its unit. It is
correct on every store (memory, SQLite, PostgreSQL) because it is the batch machinery itself;
on SQLite the units of a process still take turns, since a transactional batch holds the
store's one connection. The PostgreSQL store replaces it with a leaner unit that skips the
savepoint (:mod:`eventplatform.idempotency.postgres_units`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from eventplatform.errors import IdempotencyConflict, IdempotencyStoreError, ResourceStateError
from eventplatform.idempotency.base import KeyState
from eventplatform.idempotency.batch import BaseBatch, BaseUnit

if TYPE_CHECKING:
    from eventplatform.idempotency.store import BaseStore

__all__ = ["BatchKeyUnit", "BatchUnitSession", "KeyUnitBase"]


class KeyUnitBase:
    """The state and the checks every key unit shares; subclasses claim, commit and write."""

    def __init__(self, key: str) -> None:
        self._key = key
        self._state: KeyState | None = None
        self._open = False

    @property
    def key(self) -> str:
        """The idempotency key this unit runs."""
        return self._key

    @property
    def state(self) -> KeyState:
        """What the claim found.

        Raises:
            ResourceStateError: the unit was not entered yet.
        """
        if self._state is None:
            raise ResourceStateError(f"the unit of key {self._key!r} was not entered yet")
        return self._state

    @property
    def fresh(self) -> bool:
        """Whether this unit holds the key: run the work."""
        return self._state is KeyState.FRESH

    @property
    def done(self) -> bool:
        """Whether the key's effects were applied earlier: skip the work."""
        return self._state is KeyState.DONE

    @property
    def busy(self) -> bool:
        """Whether another owner holds the key: neither run nor acknowledge it now."""
        return self._state is KeyState.BUSY

    def __repr__(self) -> str:
        state = "new" if self._state is None else self._state.value
        return f"<{type(self).__name__} key={self._key!r} {state}>"

    def _check_running(self) -> None:
        if self._state is KeyState.DONE or self._state is KeyState.BUSY:
            raise IdempotencyStoreError(
                f"key {self._key!r} is {self._state.value}: this unit holds no transaction to "
                "write in"
            )
        if not self._open:
            raise ResourceStateError(f"the unit of key {self._key!r} is not open")


class BatchKeyUnit(KeyUnitBase):
    """A key unit made of a batch of one key and that key's unit."""

    def __init__(self, store: BaseStore, group: str, key: str, owner: str, lease: float) -> None:
        super().__init__(key)
        self._store = store
        self._group = group
        self._owner = owner
        self._lease = lease
        self._batch: BaseBatch | None = None
        self._unit: BaseUnit | None = None

    @property
    def transactional(self) -> bool:
        """Whether :meth:`execute` and friends are available."""
        return self._store.transactional

    async def __aenter__(self) -> Self:
        if self._state is not None:
            raise ResourceStateError("a unit can be entered once; ask for a new one")
        batch = self._store.batch(self._group, owner=self._owner, lease=self._lease)
        try:
            await batch.__aenter__()
        except IdempotencyConflict:
            # SQLite: another connection held the write lock past busy_timeout.
            self._state = KeyState.BUSY
            return self
        try:
            try:
                claim = await batch.claim([self._key])
            except IdempotencyConflict:
                claim = None
            if claim is not None and claim.fresh:
                unit = batch.unit(self._key)
                await unit.__aenter__()
                self._batch, self._unit = batch, unit
                self._state = KeyState.FRESH
                self._open = True
                return self
        except BaseException as exc:
            await batch.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._state = KeyState.DONE if claim is not None and claim.done else KeyState.BUSY
        await batch.__aexit__(None, None, None)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        batch, unit = self._batch, self._unit
        self._batch = self._unit = None
        self._open = False
        if batch is None or unit is None:
            return
        try:
            await unit.__aexit__(exc_type, exc, tb)
        except BaseException as failed:
            await batch.__aexit__(type(failed), failed, failed.__traceback__)
            raise
        await batch.__aexit__(exc_type, exc, tb)

    async def execute(self, sql: str, *args: Any) -> None:
        """Run one statement in the unit's transaction.

        Raises:
            StoreNotTransactional: the store has no transactions (memory).
            IdempotencyStoreError: the statement failed, or the key is not fresh.
            IdempotencyStoreUnavailable: the database connection failed.
            ResourceStateError: the unit is not open.
        """
        self._check_running()
        assert self._unit is not None
        await self._unit.execute(sql, *args)

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per argument tuple, as :meth:`execute` does.

        Raises:
            IdempotencyStoreError, IdempotencyStoreUnavailable, ResourceStateError: as
                :meth:`execute`.
        """
        self._check_running()
        assert self._unit is not None
        await self._unit.executemany(sql, args)

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run a query in the unit's transaction and return its rows.

        Raises:
            IdempotencyStoreError, IdempotencyStoreUnavailable, ResourceStateError: as
                :meth:`execute`.
        """
        self._check_running()
        assert self._unit is not None
        return await self._unit.fetch(sql, *args)

    async def connection(self) -> Any:
        """The store's database connection inside this unit (PostgreSQL's batch units only).

        Raises:
            IdempotencyStoreError: the store does not hand its connection out, or the key is
                not fresh.
            ResourceStateError: the unit is not open.
        """
        self._check_running()
        connection = getattr(self._unit, "connection", None)
        if connection is None:
            raise IdempotencyStoreError(
                f"{type(self._unit).__name__} does not hand out its connection; use execute/fetch"
            )
        return await connection()


class BatchUnitSession:
    """Key units one after another; each is a batch of one (no connection is kept between)."""

    def __init__(self, store: BaseStore, group: str, owner: str, lease: float) -> None:
        self._store = store
        self._group = group
        self._owner = owner
        self._lease = lease
        self._open = False

    async def __aenter__(self) -> Self:
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = False

    def expect(self, key: str | None) -> None:
        """A hint for stores that claim ahead; each unit here is a batch of its own."""

    def unit(self, key: str) -> BatchKeyUnit:
        """The unit that claims and runs ``key``.

        Raises:
            ResourceStateError: the session is not open.
        """
        if not self._open:
            raise ResourceStateError("this unit session is not open; use `async with`")
        return BatchKeyUnit(self._store, self._group, key, self._owner, self._lease)
