"""The production store: idempotency keys in PostgreSQL, shared by every instance of a service.

Requires asyncpg (``pip install 'eventplatform[postgres]'``); importing this module without it
raises an :class:`ImportError` that says so. ``eventplatform.idempotency`` itself does not
import it until a PostgreSQL store is asked for.

**Claims are one statement per poll.** A data-modifying CTE first reads which keys are known
done or leased by another live owner (those rows are not touched, so not locked), then
``INSERT … SELECT FROM unnest($keys) … ON CONFLICT (consumer_group, key) DO UPDATE … WHERE
<claimable>`` takes the rest, and the final ``SELECT`` classifies every key. The primary key
makes the race between members safe: an ``INSERT`` that meets a row another open transaction
inserted or locked waits for that transaction and then re-checks the committed row
(https://www.postgresql.org/docs/current/sql-insert.html#SQL-ON-CONFLICT), so a key whose
winner committed comes back not fresh and the loser never runs it. Keys are inserted in sorted
order, so two batches claiming overlapping keys lock them in the same order.

**Transactional batches** hold one pooled connection and one transaction: the claim writes the
rows as done at once (the row lock, not the lease, keeps other members out until COMMIT), units
use lazy savepoints, and the keys whose unit did not complete are deleted before COMMIT. A poll
whose handlers all succeed costs ``BEGIN``, the claim, the handlers' own statements and
``COMMIT``. How long a claim waits for another member's open batch is bounded by
``lock_timeout`` (a session setting, so it applies to the handler's statements too); past it the
batch fails with :class:`~eventplatform.errors.IdempotencyConflict` and can be retried.

**Non-transactional batches** claim with an autocommitted statement that records the owner and
the lease expiry, and settle (done-marks and releases) in one statement at exit.

Lease and TTL arithmetic uses the server's clock (``clock_timestamp()``), so members on hosts
with skewed clocks agree on when a lease lapsed; a ``clock`` can be injected for tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from eventplatform.errors import (
    EventPlatformError,
    IdempotencyConflict,
    IdempotencyStoreError,
    IdempotencyStoreUnavailable,
    ResourceStateError,
    map_exceptions,
)
from eventplatform.idempotency.base import (
    DEFAULT_PURGE_BATCH,
    DEFAULT_PURGE_INTERVAL,
    DEFAULT_TABLE,
    Clock,
    KeyRecord,
    KeyUnit,
    UnitSession,
)
from eventplatform.idempotency.batch import BaseBatch, BaseUnit
from eventplatform.idempotency.statements import PostgresStatements
from eventplatform.idempotency.store import BaseStore, positive, table_names

try:
    import asyncpg
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "the PostgreSQL idempotency store needs asyncpg: pip install 'eventplatform[postgres]'"
    ) from exc

__all__ = ["PostgresStore", "PostgresUnit", "translate"]

log = logging.getLogger("eventplatform.idempotency")

_SAVEPOINT = "eventplatform_unit"

# First match wins (see map_exceptions): the retriable classes before their parents.
_ERRORS: dict[type[BaseException], type[EventPlatformError]] = {
    asyncpg.exceptions.LockNotAvailableError: IdempotencyConflict,  # 55P03 lock_timeout
    asyncpg.exceptions.TransactionRollbackError: IdempotencyConflict,  # 40P01, 40001
    asyncpg.exceptions.PostgresConnectionError: IdempotencyStoreUnavailable,  # class 08
    asyncpg.exceptions.OperatorInterventionError: IdempotencyStoreUnavailable,  # 57: shutdown
    asyncpg.exceptions.InsufficientResourcesError: IdempotencyStoreUnavailable,  # 53: full
    OSError: IdempotencyStoreUnavailable,  # refused, reset, TimeoutError
    asyncpg.PostgresError: IdempotencyStoreError,
    asyncpg.InterfaceError: IdempotencyStoreError,
}


def translate(what: str) -> AbstractContextManager[None]:
    """asyncpg's errors inside the block, as the store's (``PostgreSQL <what> failed: …``)."""
    return map_exceptions(_ERRORS, f"PostgreSQL {what} failed")


_translate = translate


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


class PostgresStore(BaseStore):
    """Idempotency keys in PostgreSQL, transactional with the handler's writes.

    Args:
        dsn: a libpq connection URI (``postgresql://user:pass@host:5432/db?sslmode=…``).
        table: the table holding the keys (``schema.table`` allowed), created when missing.
        lease: seconds a non-transactional claim keeps other owners away (default 30).
        ttl: seconds a done key is remembered (default 7 days).
        purge_interval: seconds between background purges; None disables them.
        purge_batch: rows deleted per purge statement.
        clock: seconds since the epoch; the server's clock when None.
        min_connections, max_connections: the connection pool's bounds; a transactional
            batch or a key unit holds one connection while it is open, so up to
            ``max_connections - 1`` key units run at once (:attr:`concurrent_units`).
        lock_timeout: seconds a statement waits for a row lock before
            :class:`~eventplatform.errors.IdempotencyConflict`.
        connect_timeout: seconds to connect or to wait for a free pooled connection.
        create_table: create the table and its index at start when missing.
        trace: called with every SQL statement the store's connections run, for debugging.

    Raises:
        ConfigurationError: a setting is malformed.
    """

    _transactional = True

    def __init__(
        self,
        *,
        dsn: str,
        table: str = DEFAULT_TABLE,
        lease: float | None = None,
        ttl: float | None = None,
        purge_interval: float | None = DEFAULT_PURGE_INTERVAL,
        purge_batch: int = DEFAULT_PURGE_BATCH,
        clock: Clock | None = None,
        min_connections: int = 1,
        max_connections: int = 10,
        lock_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        create_table: bool = True,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(
            lease=lease,
            ttl=ttl,
            purge_interval=purge_interval,
            purge_batch=purge_batch,
            clock=clock,
        )
        self.dsn = dsn
        self.table = table
        self._sql = PostgresStatements(*table_names(table, schema_allowed=True))
        self.max_connections = int(positive("max_connections", max_connections))
        self.min_connections = min(int(min_connections), self.max_connections)
        self.lock_timeout = positive("lock_timeout", lock_timeout)
        self.connect_timeout = positive("connect_timeout", connect_timeout)
        self.create_table = create_table
        self._trace = trace
        self._pool: Any = None

    def __repr__(self) -> str:
        # The DSN may carry a password: show only where it points.
        where = self.dsn.rsplit("@", 1)[-1]
        return f"<PostgresStore {where} table={self.table!r}>"

    def _server_now(self) -> datetime | None:
        """The ``now`` parameter: None lets the server's clock decide."""
        if self._clock is None:
            return None
        return datetime.fromtimestamp(self._clock(), UTC)

    def pool(self) -> Any:
        """The started asyncpg pool (for tools and tests; handlers write through their unit).

        Raises:
            ResourceStateError: the store is not started.
        """
        if self._pool is None:
            raise ResourceStateError(f"{self!r} is not started")
        return self._pool

    async def _init_connection(self, conn: Any) -> None:
        trace = self._trace
        if trace is not None:
            conn.add_query_logger(lambda record: trace(record.query))

    async def _open(self) -> None:
        settings = {
            "application_name": "eventplatform-idempotency",
            "lock_timeout": str(int(self.lock_timeout * 1000)),
        }
        with _translate(f"connecting to {self!r}"):
            self._pool = await asyncpg.create_pool(
                dsn=self.dsn,
                min_size=self.min_connections,
                max_size=self.max_connections,
                timeout=self.connect_timeout,
                server_settings=settings,
                init=self._init_connection,
            )
        try:
            if self.create_table:
                with _translate(f"creating {self.table}"):
                    async with self._pool.acquire(timeout=self.connect_timeout) as conn:
                        await self._create_table(conn)
        except BaseException:
            pool, self._pool = self._pool, None
            pool.terminate()
            raise

    async def _create_table(self, conn: Any) -> None:
        async with conn.transaction():
            # Two instances starting together would otherwise race on the catalog and one
            # would fail with a unique violation.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.table)
            await conn.execute(self._sql.create)
            await conn.execute(self._sql.index)

    async def _close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with _translate("closing the pool"):
                await pool.close()  # waits for open batches to give their connections back

    async def _fetch(self, what: str, sql: str, *args: Any) -> list[Any]:
        """One statement on a pooled connection, autocommitted."""
        pool = self.pool()
        with _translate(what):
            async with pool.acquire(timeout=self.connect_timeout) as conn:
                return list(await conn.fetch(sql, *args))

    async def _execute(self, sql: str, args: tuple[Any, ...]) -> None:
        pool = self.pool()
        with _translate(f"running {sql[:60]!r}"):
            async with pool.acquire(timeout=self.connect_timeout) as conn:
                await conn.execute(sql, *args)

    @property
    def concurrent_units(self) -> int:
        """How many key units can hold a transaction at once: the pool's size, less one
        connection kept for the purge and lookups."""
        return max(1, self.max_connections - 1)

    def _new_key_unit(self, group: str, key: str, owner: str, lease: float) -> KeyUnit:
        from eventplatform.idempotency.postgres_units import (  # noqa: PLC0415 - cycle
            PostgresUnitSession,
        )

        return PostgresUnitSession(self, group, owner, lease, single=True).unit(key)

    def _new_session(self, group: str, owner: str, lease: float) -> UnitSession:
        from eventplatform.idempotency.postgres_units import (  # noqa: PLC0415 - cycle
            PostgresUnitSession,
        )

        return PostgresUnitSession(self, group, owner, lease)

    def _new_batch(self, group: str, owner: str, lease: float, transactional: bool) -> BaseBatch:
        return _PostgresBatch(
            self, group=group, owner=owner, lease=lease, transactional=transactional
        )

    async def _lookup(self, group: str, keys: list[str]) -> dict[str, KeyRecord]:
        rows = await self._fetch("lookup", self._sql.lookup, group, keys)
        return {
            row[0]: KeyRecord(
                group, row[0], row[1], _epoch(row[2]), _epoch(row[3]), row[4].timestamp()
            )
            for row in rows
        }

    async def _purge_chunk(self, limit: int) -> int:
        pool = self.pool()
        with _translate("purge"):
            async with pool.acquire(timeout=self.connect_timeout) as conn:
                status = await conn.execute(self._sql.purge, self._server_now(), limit)
        return int(status.rsplit(" ", 1)[-1])  # "DELETE <n>"


class PostgresUnit(BaseUnit):
    """A unit of a transactional PostgreSQL batch: a savepoint opened on the first write.

    Besides :meth:`execute`, :meth:`executemany` and :meth:`fetch` (``$1`` placeholders),
    :meth:`connection` hands out the batch's asyncpg connection for anything else.
    """

    def __init__(self, batch: _PostgresBatch, key: str, conn: Any) -> None:
        super().__init__(batch, key)
        self._conn = conn
        self._opened = False

    async def connection(self) -> Any:
        """The batch's ``asyncpg.Connection``, inside this unit's savepoint.

        Use it only until the unit ends, and never commit or roll back on it.

        Raises:
            IdempotencyStoreError: the batch is not transactional.
            IdempotencyStoreUnavailable: opening the savepoint failed.
            ResourceStateError: the unit is not open.
        """
        self._check_db()
        if not self._opened:
            # Lazy: a handler that writes nothing costs no round trip for its savepoint.
            with _translate("SAVEPOINT"):
                await self._conn.execute(f"SAVEPOINT {_SAVEPOINT}")
            self._opened = True
        return self._conn

    async def _execute(self, sql: str, args: tuple[Any, ...]) -> None:
        conn = await self.connection()
        with _translate("handler statement"):
            await conn.execute(sql, *args)

    async def _executemany(self, sql: str, args: list[tuple[Any, ...]]) -> None:
        conn = await self.connection()
        with _translate("handler statement"):
            await conn.executemany(sql, args)

    async def _fetch(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        conn = await self.connection()
        with _translate("handler query"):
            return [tuple(row) for row in await conn.fetch(sql, *args)]

    async def _release(self) -> None:
        if not self._opened:
            return
        try:
            with _translate("RELEASE SAVEPOINT"):
                await self._conn.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        except IdempotencyStoreError as exc:
            cause = exc.__cause__
            if not isinstance(cause, asyncpg.exceptions.InFailedSQLTransactionError):
                raise
            # A statement failed and the handler caught the error and returned: the unit's
            # transaction is aborted, so it cannot count as done. (The caller rolls it back.)
            raise IdempotencyStoreError(
                f"a statement of the unit of key {self.key!r} failed and the handler carried "
                "on; the unit's writes were rolled back and the key stays unfinished"
            ) from cause

    async def _rollback(self) -> None:
        if self._opened:
            self._opened = False
            with _translate("ROLLBACK TO SAVEPOINT"):
                # ROLLBACK TO keeps the savepoint; RELEASE pops it. One simple-query round trip.
                await self._conn.execute(
                    f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}; RELEASE SAVEPOINT {_SAVEPOINT}"
                )


class _PostgresBatch(BaseBatch):
    def __init__(
        self, store: PostgresStore, *, group: str, owner: str, lease: float, transactional: bool
    ) -> None:
        super().__init__(group=group, owner=owner, lease=lease, transactional=transactional)
        self.store = store
        self._conn: Any = None

    def _new_unit(self, key: str) -> BaseUnit:
        if self.transactional:
            return PostgresUnit(self, key, self._conn)
        return BaseUnit(self, key)

    async def _begin(self) -> None:
        if not self.transactional:
            return
        store = self.store
        pool = store.pool()
        with _translate("acquiring a connection"):
            self._conn = await pool.acquire(timeout=store.connect_timeout)
        try:
            with _translate("BEGIN"):
                await self._conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
        except BaseException:
            await self._end()
            raise

    async def _claim(self, keys: list[str]) -> tuple[frozenset[str], frozenset[str]]:
        store = self.store
        args = (
            self.group,
            keys,
            self.owner,
            store._server_now(),
            self.transactional,
            self.lease,
            store.ttl,
        )
        if self.transactional:
            with _translate("claim"):
                rows = await self._conn.fetch(store._sql.claim, *args)
        else:
            rows = await store._fetch("claim", store._sql.claim, *args)
        fresh = frozenset(row[0] for row in rows if row[1])
        done = frozenset(row[0] for row in rows if row[2])
        return fresh, done

    async def _renew(self, keys: tuple[str, ...]) -> frozenset[str]:
        store = self.store
        rows = await store._fetch(
            "renew",
            store._sql.renew,
            self.group,
            list(keys),
            self.owner,
            store._server_now(),
            self.lease,
            store.ttl,
        )
        return frozenset(row[0] for row in rows)

    async def _commit(self, completed: tuple[str, ...], pending: tuple[str, ...]) -> frozenset[str]:
        store = self.store
        if self.transactional:
            try:
                with _translate("commit"):
                    if pending:
                        await self._conn.execute(
                            store._sql.unclaim, self.group, self.owner, list(pending)
                        )
                    await self._conn.execute("COMMIT")
            except BaseException:
                await self._rollback_quietly()
                raise
            return frozenset()
        if not completed and not pending:
            return frozenset()
        rows = await store._fetch(
            "settle",
            store._sql.settle,
            self.group,
            list(completed),
            self.owner,
            store._server_now(),
            list(pending),
            store.ttl,
        )
        return frozenset(completed) - frozenset(row[0] for row in rows)

    async def _rollback(self) -> None:
        with _translate("rollback"):
            await self._conn.execute("ROLLBACK")

    async def _rollback_quietly(self) -> None:
        try:
            if self._conn is not None and not self._conn.is_closed():
                await self._conn.execute("ROLLBACK")
        except Exception as exc:  # the original error matters more; the pool resets it
            log.debug("rollback after a failed commit failed: %s", exc)

    async def _end(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            # The pool resets a connection left in a transaction (or terminates it).
            await self.store.pool().release(conn)
        except Exception as exc:
            log.warning("returning a connection to the pool failed: %s", exc)
            conn.terminate()
