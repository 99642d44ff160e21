"""PostgreSQL key units: one key, one transaction, one pooled connection, several at once.

A batch holds one connection for a whole poll, so its units take turns: a handler waiting
20 ms on I/O holds every other key of the poll back. A key unit is the inbox pattern per
event instead: ``BEGIN`` and the claim of its one key in one message (the claim writes the row
as done at once, as a batch's does: the row lock keeps other members out until ``COMMIT``),
the handler's writes, and ``COMMIT``, on a connection of its own. Up to the pool's size of
them run at once. Two round trips per key besides the handler's and no savepoint: a failure
rolls the whole transaction back, claim included, so the key is simply unclaimed again.

A claim that waits past ``lock_timeout`` for another member's open transaction reports the key
busy rather than failing: that member is working on it.

A :class:`PostgresUnitSession` keeps its connection from one unit to the next (a consumer's
worker runs many keys in a row), sparing the pool's acquire and reset per key. Told the key of
its next unit (:meth:`PostgresUnitSession.expect`), it **claims it ahead**: the running unit's
``COMMIT`` travels with the next unit's ``BEGIN`` and claim in one message, so a worker's keys
cost one round trip each besides the handler's instead of two (see
:meth:`PostgresKeyUnit._commit_and_claim` for how the outcome of each part is told apart).

The claim is an ``INSERT … ON CONFLICT`` that each pooled connection prepares once (SQL
``PREPARE``, on its first claim; :meth:`PostgresUnitSession.claim`): the message carries only
``EXECUTE`` with the values as literals, so the server does not parse and plan the statement
per event.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import asyncpg

from eventplatform.errors import IdempotencyConflict, IdempotencyStoreError, ResourceStateError
from eventplatform.idempotency.base import KeyState
from eventplatform.idempotency.postgres import translate
from eventplatform.idempotency.units import KeyUnitBase

if TYPE_CHECKING:
    from eventplatform.idempotency.postgres import PostgresStore

__all__ = ["PostgresKeyUnit", "PostgresUnitSession", "literal"]

log = logging.getLogger("eventplatform.idempotency")


def literal(value: str) -> str:
    """``value`` as a dollar-quoted string constant (PostgreSQL docs, 4.1.2.4).

    A dollar-quoted body is taken verbatim up to the first ``$tag$``; the tag is chosen so
    that ``$tag`` occurs nowhere in the value, hence no value can end the constant early or
    add SQL after it, whatever ``standard_conforming_strings`` says.
    """
    tag, n = "k", 0
    while f"${tag}" in value:
        n += 1
        tag = f"k{n}"
    return f"${tag}${value}${tag}$"


class PostgresUnitSession:
    """Key units of one group and owner, one after another on one pooled connection.

    Args:
        store: the started store.
        group, owner, lease: as for :meth:`PostgresStore.session`.
        single: a session of one unit (``store.unit``): open at once, and the connection goes
            back to the pool when the unit ends.
    """

    def __init__(
        self, store: PostgresStore, group: str, owner: str, lease: float, *, single: bool = False
    ) -> None:
        self.store = store
        self.group = group
        self.owner = owner
        self.lease = lease
        self._conn: Any = None
        self._open = single
        self._single = single
        self._running: PostgresKeyUnit | None = None
        self._group_literal = literal(group)
        self._owner_literal = literal(owner)
        self._next: str | None = None  # the key the next unit will claim, if known
        # A key claimed ahead by the last commit: (key, fresh), fresh None when it was busy.
        # While it is fresh (or taken but not done) its transaction is open on _conn.
        self._ahead: tuple[str, bool | None] | None = None

    def expect(self, key: str | None) -> None:
        """Say which key the session's next unit will claim (None: not known).

        The unit running now (or the next to commit) then claims it right after its
        ``COMMIT``, in the same message; the next unit finds its claim made. A unit of another
        key gives the claim back first (a ``ROLLBACK``), so a wrong guess costs a round trip
        and changes nothing else.
        """
        self._next = key

    def begin_claim(self, key: str) -> str:
        """``BEGIN`` and the claim of ``key``, as one simple-query message.

        asyncpg sends one statement per round trip and has no pipelining; the simple-query
        protocol carries several statements in one message but takes no parameters, so the
        values are literals (:func:`literal`) in an ``EXECUTE`` of the claim the connection
        prepared (:meth:`claim`). One round trip fewer per event than ``BEGIN`` then a
        parameterised claim.
        """
        clock = self.store._clock
        now = "NULL" if clock is None else f"to_timestamp({float(clock())!r})"
        return self.store._sql.begin_claim_one.format(
            group=self._group_literal,
            key=literal(key),
            owner=self._owner_literal,
            now=now,
            ttl=repr(float(self.store.ttl)),
        )

    async def claim(self, conn: Any, key: str) -> str:
        """``BEGIN`` and the claim of ``key`` on ``conn``; the claim's command tag.

        The claim is a statement prepared once per connection (``EXECUTE`` of it in the
        message is all the server parses): on a connection that has not prepared it yet, or
        whose handler deallocated it, the first message fails, and the statement is prepared
        and the message sent again.
        """
        message = self.begin_claim(key)
        try:
            return str(await conn.execute(message))
        except asyncpg.InvalidSQLStatementNameError:
            await conn.execute("ROLLBACK")
            await conn.execute(self.store._sql.prepare_claim_one)
            return str(await conn.execute(message))

    def __repr__(self) -> str:
        return f"<PostgresUnitSession group={self.group!r} owner={self.owner!r}>"

    async def __aenter__(self) -> Self:
        if self._open:
            raise ResourceStateError(f"{self!r} is already open")
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open = False
        await self._give_back(keep=False)

    def unit(self, key: str) -> PostgresKeyUnit:
        """The unit that claims and runs ``key`` on this session's connection.

        Raises:
            ResourceStateError: the session is not open.
        """
        if not self._open:
            raise ResourceStateError(f"{self!r} is not open; use `async with`")
        return PostgresKeyUnit(self, key)

    async def _take(self, unit: PostgresKeyUnit) -> Any:
        if not self._open:
            raise ResourceStateError(f"{self!r} is not open; use `async with`")
        if self._running is not None:
            raise ResourceStateError(
                f"{self!r} runs the unit of key {self._running.key!r} already; a session runs "
                "one unit at a time"
            )
        if self._conn is None:
            store = self.store
            with translate("acquiring a connection"):
                self._conn = await store.pool().acquire(timeout=store.connect_timeout)
        self._running = unit
        return self._conn

    async def _give_back(self, *, keep: bool) -> None:
        self._running = None
        if keep and self._open and not self._single:
            return
        if self._single:
            self._open = False
        self._ahead = None  # its transaction ends with the connection's reset
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            # The pool rolls back a connection left in a transaction (or terminates it).
            await self.store.pool().release(conn)
        except BaseException as exc:
            log.warning("returning a connection to the pool failed: %s", exc)
            with contextlib.suppress(Exception):  # already released by a closing pool
                conn.terminate()
            if not isinstance(exc, Exception):
                raise


class PostgresKeyUnit(KeyUnitBase):
    """One key claimed and run in its own PostgreSQL transaction (see the module docstring).

    Besides :meth:`execute`, :meth:`executemany` and :meth:`fetch` (``$1`` placeholders),
    :meth:`connection` hands out the unit's asyncpg connection for anything else.
    """

    def __init__(self, session: PostgresUnitSession, key: str) -> None:
        super().__init__(key)
        self._session = session
        self._conn: Any = None

    @property
    def transactional(self) -> bool:
        """Always True: the unit is a database transaction."""
        return True

    async def __aenter__(self) -> Self:
        if self._state is not None:
            raise ResourceStateError("a unit can be entered once; ask for a new one")
        session = self._session
        store = session.store
        conn = await session._take(self)
        self._conn = conn
        ahead, session._ahead = session._ahead, None
        fresh: bool | None  # None: held past lock_timeout by another member's transaction
        done = False
        try:
            try:
                if ahead is not None and ahead[0] == self._key:
                    fresh = ahead[1]  # claimed by the previous unit's commit message
                else:
                    if ahead is not None and ahead[1] is not None:
                        with translate("ROLLBACK"):  # another key was claimed ahead
                            await conn.execute("ROLLBACK")
                    with translate("claim"):
                        tag = await session.claim(conn, self._key)
                    fresh = tag == "INSERT 0 1"
                if fresh is False:
                    with translate("claim"):
                        done = await conn.fetchval(
                            store._sql.done_one, session.group, self._key, store._server_now()
                        )
            except IdempotencyConflict:
                fresh, done = None, False
        except BaseException:
            self._state = KeyState.BUSY
            await self._end(commit=False, keep=False)
            raise
        if fresh:
            self._state = KeyState.FRESH
            self._open = True
            return self
        self._state = KeyState.DONE if done else KeyState.BUSY
        await self._end(commit=False, keep=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._open:
            return
        self._open = False
        await self._end(commit=exc is None, keep=True)

    async def _end(self, *, commit: bool, keep: bool) -> None:
        """COMMIT or ROLLBACK, then hand the connection back to the session (or the pool)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        session = self._session
        try:
            if commit:
                following, session._next = session._next, None
                if following is not None and following != self._key and session._open:
                    await self._commit_and_claim(conn, following)
                else:
                    with translate("COMMIT"):
                        status = await conn.execute("COMMIT")
                    if status != "COMMIT":
                        # PostgreSQL answers COMMIT of an aborted transaction with ROLLBACK:
                        # a statement failed and the handler caught the error and returned.
                        raise self._carried_on()
            elif not conn.is_closed() and conn.is_in_transaction():
                with translate("ROLLBACK"):
                    await conn.execute("ROLLBACK")
        except BaseException:
            keep = False  # in an unknown state: the pool resets it
            if commit:
                raise
            log.debug("rolling back the unit of key %r failed", self._key, exc_info=True)
        finally:
            try:
                clean = (
                    keep
                    and not conn.is_closed()
                    and (session._ahead is not None or not conn.is_in_transaction())
                )
            except Exception:  # e.g. the pool was closed under the unit
                clean = False
            await session._give_back(keep=clean)

    async def _commit_and_claim(self, conn: Any, key: str) -> None:
        """COMMIT this unit, then ``BEGIN`` and claim ``key`` for the session's next unit.

        One simple-query message, ``SELECT 1; COMMIT; BEGIN …; INSERT …`` (the claim), whose
        parts run in order and stop at the first error. Each outcome is told apart:

        - ``SELECT 1`` fails only in a transaction that a failed statement aborted (where a
          ``COMMIT`` alone would answer ``ROLLBACK``, a tag the claim's would hide): nothing
          after it ran; roll back and raise, as a lone ``COMMIT`` would;
        - an error with the connection left idle came from ``COMMIT``: raised, as before;
        - an error with the connection in a (failed) transaction came after ``COMMIT``
          succeeded: the unit committed; the claim is rolled back, and remembered as busy when
          it waited past ``lock_timeout`` (else the next unit claims again itself).

        Raises:
            IdempotencyStoreError: the unit's transaction did not commit.
            IdempotencyStoreUnavailable: the connection failed (the commit may or may not
                have happened, as for a lone ``COMMIT``).
        """
        session = self._session
        message = "SELECT 1; COMMIT; " + session.begin_claim(key)
        try:
            with translate("COMMIT"):
                try:
                    tag = await conn.execute(message)
                except asyncpg.InFailedSQLTransactionError:
                    await conn.execute("ROLLBACK")
                    raise self._carried_on() from None
                except asyncpg.PostgresError as exc:
                    if conn.is_closed() or not conn.is_in_transaction():
                        raise  # COMMIT itself failed
                    await conn.execute("ROLLBACK")  # committed; the claim failed
                    if isinstance(
                        exc, asyncpg.LockNotAvailableError | asyncpg.DeadlockDetectedError
                    ):
                        session._ahead = (key, None)
                    return
        except IdempotencyStoreError:
            session._ahead = None
            raise
        session._ahead = (key, tag == "INSERT 0 1")

    def _carried_on(self) -> IdempotencyStoreError:
        return IdempotencyStoreError(
            f"a statement of the unit of key {self._key!r} failed and the handler carried on; "
            "the unit's writes were rolled back and the key stays unfinished"
        )

    def _connection(self) -> Any:
        self._check_running()
        return self._conn

    async def connection(self) -> Any:
        """The unit's ``asyncpg.Connection``, inside its transaction.

        Use it only until the unit ends, and never commit or roll back on it.

        Raises:
            IdempotencyStoreError: the key is not fresh.
            ResourceStateError: the unit is not open.
        """
        return self._connection()

    async def execute(self, sql: str, *args: Any) -> None:
        """Run one statement in the unit's transaction.

        Raises:
            IdempotencyStoreError: the statement failed, or the key is not fresh.
            IdempotencyStoreUnavailable: the database connection failed.
            ResourceStateError: the unit is not open.
        """
        conn = self._connection()
        with translate("handler statement"):
            await conn.execute(sql, *args)

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per argument tuple, as :meth:`execute` does.

        Raises:
            IdempotencyStoreError, IdempotencyStoreUnavailable, ResourceStateError: as
                :meth:`execute`.
        """
        conn = self._connection()
        with translate("handler statement"):
            await conn.executemany(sql, [tuple(row) for row in args])

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run a query in the unit's transaction and return its rows.

        Raises:
            IdempotencyStoreError, IdempotencyStoreUnavailable, ResourceStateError: as
                :meth:`execute`.
        """
        conn = self._connection()
        with translate("handler query"):
            return [tuple(row) for row in await conn.fetch(sql, *args)]
