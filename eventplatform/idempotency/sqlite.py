"""The embedded default: idempotency keys in a SQLite file, next to the handler's own tables.

One connection, owned by one worker thread: every ``sqlite3`` call runs there, off the event
loop, and a batch costs one thread hop per operation (claim, commit), never one per event.
The file is in WAL mode (https://sqlite.org/wal.html), so readers in other processes are not
blocked by a batch, and ``synchronous=FULL`` by default: with ``NORMAL`` a commit "might roll
back following a power loss", after the consumer committed the Kafka offsets past it.

Transactional batches (the default) run in one ``BEGIN IMMEDIATE`` transaction: the write lock
is taken at the start, so two members sharing the file never both hold a key (the second waits
up to ``busy_timeout``), and a deferred transaction never has to be upgraded, which in WAL mode
fails with ``SQLITE_BUSY`` instead of waiting. Claims write the keys as done straight away and
the keys whose unit did not complete are deleted before ``COMMIT``: a batch whose units all
succeed writes each key once. Units use lazy savepoints: one is opened only when the handler
writes through the unit.

Non-transactional batches commit each claim, renewal and settlement in its own short
``BEGIN IMMEDIATE`` transaction (one thread hop each).

A batch is one claim statement (``INSERT … SELECT FROM json_each(?) … ON CONFLICT DO UPDATE …
RETURNING``; JSON1 is built in since SQLite 3.38, ``RETURNING`` needs 3.35) plus, when some
keys were not claimable, one ``SELECT`` telling done from busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from typing import Any, Literal, TypeVar
from uuid import UUID

from eventplatform.errors import (
    ConfigurationError,
    IdempotencyConflict,
    IdempotencyStoreError,
    IdempotencyStoreUnavailable,
    ResourceStateError,
)
from eventplatform.idempotency.base import (
    DEFAULT_PURGE_BATCH,
    DEFAULT_PURGE_INTERVAL,
    DEFAULT_TABLE,
    Clock,
    KeyRecord,
)
from eventplatform.idempotency.batch import BaseBatch, BaseUnit
from eventplatform.idempotency.statements import SqliteStatements
from eventplatform.idempotency.store import BaseStore, positive, table_names

__all__ = ["SqliteStore", "SqliteUnit"]

log = logging.getLogger("eventplatform.idempotency")

T = TypeVar("T")

_MIN_VERSION = (3, 35, 0)  # RETURNING
_SAVEPOINT = "eventplatform_unit"
# Primary result codes (https://sqlite.org/rescode.html).
_BUSY, _LOCKED = 5, 6
_IOERR, _FULL, _CANTOPEN, _PROTOCOL = 10, 13, 14, 15


def _translate(exc: sqlite3.Error, what: str) -> IdempotencyStoreError:
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in (_BUSY, _LOCKED):
        return IdempotencyConflict(
            f"{what}: {exc} (another connection held the write lock longer than busy_timeout)"
        )
    if primary in (_IOERR, _FULL, _CANTOPEN, _PROTOCOL):
        return IdempotencyStoreUnavailable(f"{what}: {exc}")
    return IdempotencyStoreError(f"{what}: {exc}")


def _rollback_quietly(conn: sqlite3.Connection) -> None:
    # After a failed statement the transaction may or may not still be open.
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


class SqliteStore(BaseStore):
    """Idempotency keys in a SQLite file (WAL), transactional with the handler's writes.

    Args:
        path: the database file (created when missing), or ``":memory:"``.
        table: the table holding the keys, created when missing.
        lease: seconds a non-transactional claim keeps other owners away (default 30).
        ttl: seconds a done key is remembered (default 7 days).
        purge_interval: seconds between background purges; None disables them.
        purge_batch: rows deleted per purge statement.
        clock: seconds since the epoch; ``time.time`` when None. Members sharing a file share
            a host, hence a clock.
        busy_timeout: seconds to wait for another connection's write lock before
            :class:`~eventplatform.errors.IdempotencyConflict`.
        synchronous: ``PRAGMA synchronous``; ``FULL`` survives power loss, ``NORMAL`` only
            process crashes.
        trace: called (in the worker thread) with every SQL statement run, for debugging.

    Raises:
        ConfigurationError: a setting is malformed.
    """

    _transactional = True

    def __init__(
        self,
        *,
        path: str | os.PathLike[str],
        table: str = DEFAULT_TABLE,
        lease: float | None = None,
        ttl: float | None = None,
        purge_interval: float | None = DEFAULT_PURGE_INTERVAL,
        purge_batch: int = DEFAULT_PURGE_BATCH,
        clock: Clock | None = None,
        busy_timeout: float = 30.0,
        synchronous: Literal["NORMAL", "FULL", "EXTRA"] = "FULL",
        trace: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(
            lease=lease,
            ttl=ttl,
            purge_interval=purge_interval,
            purge_batch=purge_batch,
            clock=clock,
        )
        self.path = os.fspath(path)
        self.table = table
        self._sql = SqliteStatements(*table_names(table, schema_allowed=False))
        self.busy_timeout = positive("busy_timeout", busy_timeout)
        if synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise ConfigurationError(
                f"SQLite synchronous must be NORMAL, FULL or EXTRA, got {synchronous!r}"
            )
        self.synchronous = synchronous
        self._trace = trace
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._holder: asyncio.Task[Any] | None = None

    def __repr__(self) -> str:
        return f"<SqliteStore path={self.path!r} table={self.table!r}>"

    # -- the worker thread ---------------------------------------------------------------

    async def _call(self, fn: Callable[[], T], what: str) -> T:
        executor = self._executor
        if executor is None:
            raise ResourceStateError(f"{self!r} is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn)
        except sqlite3.Error as exc:
            raise _translate(exc, f"SQLite {what} on {self.path}") from exc

    async def _run(self, fn: Callable[[sqlite3.Connection], T], what: str) -> T:
        conn = self._conn
        if conn is None:
            raise ResourceStateError(f"{self!r} is closed")
        return await self._call(lambda: fn(conn), what)

    def _reset_later(self) -> None:
        """Queue a rollback of whatever transaction an interrupted operation left open.

        Not awaited: the worker runs jobs in order, so it runs before the next holder's.
        """
        conn, executor = self._conn, self._executor
        if conn is None or executor is None:
            return
        future: Future[None] = executor.submit(_rollback_quietly, conn)
        future.add_done_callback(_log_failure)

    async def _acquire(self) -> None:
        """Take the connection for one operation or one transactional batch.

        Raises:
            IdempotencyStoreError: this task already holds it (an open batch), which would
                wait for itself forever.
        """
        task = asyncio.current_task()
        if task is not None and self._holder is task:
            raise IdempotencyStoreError(
                f"{self!r} is held by this task's open transactional batch; finish the batch "
                "first (a SQLite store has one connection)"
            )
        await self._lock.acquire()
        self._holder = task

    def _release(self) -> None:
        self._holder = None
        self._lock.release()

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        await self._acquire()
        try:
            yield
        finally:
            self._release()

    # -- lifecycle -------------------------------------------------------------------------

    async def _open(self) -> None:
        if sqlite3.sqlite_version_info < _MIN_VERSION:
            raise IdempotencyStoreError(
                f"SQLite {sqlite3.sqlite_version} is too old for the idempotency store: it "
                "needs 3.35+ (RETURNING) with JSON1; use a newer Python build or PostgreSQL"
            )
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="eventplatform-sqlite"
        )
        try:
            self._conn = await self._call(self._connect, "open")
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit BEGIN from the sqlite3 module; we issue our own.
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            if self._trace is not None:
                conn.set_trace_callback(self._trace)
            mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
            if mode != "wal" and self.path != ":memory:":
                raise IdempotencyStoreError(
                    f"SQLite could not put {self.path} in WAL mode (journal_mode is {mode}); "
                    "WAL needs a local file system"
                )
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("SELECT json_array_length('[]')")  # JSON1 present?
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(self._sql.create)
            conn.execute(self._sql.index)
            conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        return conn

    async def _close(self) -> None:
        async with self._exclusive():  # waits for open batches
            conn, self._conn = self._conn, None
            executor = self._executor
            try:
                if conn is not None:
                    await self._call(conn.close, "close")
            finally:
                self._executor = None
                if executor is not None:
                    executor.shutdown(wait=True)  # the worker is idle: this is a quick join

    async def _execute(self, sql: str, args: tuple[Any, ...]) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(sql, _params(args))
            except BaseException:
                _rollback_quietly(conn)
                raise
            conn.execute("COMMIT")

        async with self._exclusive():
            await self._run(job, "statement")

    def _new_batch(self, group: str, owner: str, lease: float, transactional: bool) -> BaseBatch:
        return _SqliteBatch(
            self, group=group, owner=owner, lease=lease, transactional=transactional
        )

    async def _lookup(self, group: str, keys: list[str]) -> dict[str, KeyRecord]:
        params = {"group": group, "keys": json.dumps(keys)}

        def job(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(self._sql.lookup, params).fetchall()

        async with self._exclusive():
            rows = await self._run(job, "lookup")
        return {row[0]: KeyRecord(group, *row) for row in rows}

    async def _purge_chunk(self, limit: int) -> int:
        params = {"now": self.now(), "limit": limit}

        def job(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                deleted = conn.execute(self._sql.purge, params).rowcount
                conn.execute("COMMIT")
            except BaseException:
                _rollback_quietly(conn)
                raise
            return deleted

        async with self._exclusive():
            return await self._run(job, "purge")


def _log_failure(future: Future[None]) -> None:
    exc = future.exception()
    if exc is not None:
        log.warning("rolling back an interrupted SQLite transaction failed: %s", exc)


class SqliteUnit(BaseUnit):
    """A unit of a transactional SQLite batch: a savepoint opened on the first write.

    Besides :meth:`execute`, :meth:`executemany` and :meth:`fetch` (``?``, ``$1`` or ``:name``
    placeholders; UUID, Decimal, date and datetime values bound as text), :meth:`run` hands a
    function the ``sqlite3.Connection`` in the store's thread.
    """

    def __init__(self, batch: _SqliteBatch, key: str) -> None:
        super().__init__(batch, key)
        self._store = batch.store
        self._opened = False

    def _enter(self, conn: sqlite3.Connection) -> None:  # runs in the worker thread
        if not self._opened:
            conn.execute(f"SAVEPOINT {_SAVEPOINT}")
            self._opened = True

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Call ``fn(connection)`` in the store's thread, inside this unit's savepoint.

        ``fn`` must not commit, roll back or keep the connection.

        Raises:
            IdempotencyStoreError: the batch is not transactional, or an ``sqlite3.Error``
                came out of ``fn`` (other exceptions pass through unchanged).
            IdempotencyStoreUnavailable: the database file failed.
            ResourceStateError: the unit is not open.
        """
        self._check_db()

        def job(conn: sqlite3.Connection) -> T:
            self._enter(conn)
            return fn(conn)

        return await self._store._run(job, "handler statement")

    async def _execute(self, sql: str, args: tuple[Any, ...]) -> None:
        await self.run(lambda conn: conn.execute(sql, _params(args)))

    async def _executemany(self, sql: str, args: list[tuple[Any, ...]]) -> None:
        await self.run(lambda conn: conn.executemany(sql, [_params(row) for row in args]))

    async def _fetch(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return await self.run(lambda conn: conn.execute(sql, _params(args)).fetchall())

    async def _release(self) -> None:
        if self._opened:
            await self._store._run(
                lambda conn: conn.execute(f"RELEASE {_SAVEPOINT}"), "release savepoint"
            )

    async def _rollback(self) -> None:
        if self._opened:

            def job(conn: sqlite3.Connection) -> None:
                # ROLLBACK TO keeps the savepoint on the stack; RELEASE pops it.
                conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
                conn.execute(f"RELEASE {_SAVEPOINT}")

            await self._store._run(job, "roll back savepoint")


def _value(value: Any) -> Any:
    """A value sqlite3 can bind, for the types an event carries that it cannot.

    The same handler code runs on PostgreSQL (asyncpg binds these natively) and here: UUIDs
    as their canonical text, decimals as exact text (never a float), datetimes and dates as
    ISO 8601. Converted per call rather than with ``sqlite3.register_adapter``, which would
    change every SQLite connection of the process.
    """
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, date):  # datetime is a date
        return value.isoformat()
    return value


def _params(args: tuple[Any, ...]) -> Any:
    # `unit.execute(sql, {"name": 1})` binds named parameters, `unit.execute(sql, 1, 2)` `?`s
    # (or `$1`, `$2`: SQLite numbers `$NNN` parameters like `?NNN`, as PostgreSQL does).
    if len(args) == 1 and isinstance(args[0], dict):
        return {name: _value(value) for name, value in args[0].items()}
    return tuple(_value(value) for value in args)


class _SqliteBatch(BaseBatch):
    def __init__(
        self, store: SqliteStore, *, group: str, owner: str, lease: float, transactional: bool
    ) -> None:
        super().__init__(group=group, owner=owner, lease=lease, transactional=transactional)
        self.store = store
        self._holding = False
        self._clean = True

    def _new_unit(self, key: str) -> BaseUnit:
        return SqliteUnit(self, key) if self.transactional else BaseUnit(self, key)

    def _params(self, keys: tuple[str, ...] | list[str], **extra: Any) -> dict[str, Any]:
        return {"group": self.group, "owner": self.owner, "keys": json.dumps(keys), **extra}

    async def _short(self, job: Callable[[sqlite3.Connection], T], what: str) -> T:
        """Run ``job`` in its own BEGIN IMMEDIATE … COMMIT (non-transactional batches)."""

        def wrapped(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = job(conn)
                conn.execute("COMMIT")
            except BaseException:
                _rollback_quietly(conn)
                raise
            return result

        async with self.store._exclusive():
            return await self.store._run(wrapped, what)

    async def _begin(self) -> None:
        if not self.transactional:
            return
        store = self.store
        await store._acquire()
        self._holding = True
        self._clean = False
        try:
            await store._run(lambda conn: conn.execute("BEGIN IMMEDIATE"), "BEGIN IMMEDIATE")
        except BaseException:
            await self._end()
            raise

    async def _claim(self, keys: list[str]) -> tuple[frozenset[str], frozenset[str]]:
        now = self.store.now()
        if self.transactional:
            written = {"lease_until": None, "done_at": now, "expires_at": now + self.store.ttl}
        else:
            until = now + self.lease
            written = {"lease_until": until, "done_at": None, "expires_at": until + self.store.ttl}
        params = self._params(keys, now=now, **written)
        sql = self.store._sql

        def job(conn: sqlite3.Connection) -> tuple[frozenset[str], frozenset[str]]:
            fresh = frozenset(row[0] for row in conn.execute(sql.claim, params))
            rest = [key for key in keys if key not in fresh]
            done: frozenset[str] = frozenset()
            if rest:
                others = {**params, "keys": json.dumps(rest)}
                done = frozenset(row[0] for row in conn.execute(sql.done_among, others))
            return fresh, done

        if self.transactional:
            return await self.store._run(job, "claim")
        return await self._short(job, "claim")

    async def _renew(self, keys: tuple[str, ...]) -> frozenset[str]:
        until = self.store.now() + self.lease
        params = self._params(keys, lease_until=until, expires_at=until + self.store.ttl)
        sql = self.store._sql.renew
        return await self._short(
            lambda conn: frozenset(row[0] for row in conn.execute(sql, params)), "renew"
        )

    async def _commit(self, completed: tuple[str, ...], pending: tuple[str, ...]) -> frozenset[str]:
        sql = self.store._sql
        if self.transactional:

            def commit(conn: sqlite3.Connection) -> None:
                try:
                    if pending:
                        conn.execute(sql.unclaim, self._params(pending))
                    conn.execute("COMMIT")
                except BaseException:
                    _rollback_quietly(conn)
                    raise

            await self.store._run(commit, "commit")
            self._clean = True
            return frozenset()
        if not completed and not pending:
            return frozenset()
        now = self.store.now()

        def settle(conn: sqlite3.Connection) -> frozenset[str]:
            done: frozenset[str] = frozenset()
            if completed:
                params = self._params(completed, now=now, expires_at=now + self.store.ttl)
                done = frozenset(row[0] for row in conn.execute(sql.complete, params))
            if pending:
                conn.execute(sql.release, self._params(pending))
            return frozenset(completed) - done

        return await self._short(settle, "settle")

    async def _rollback(self) -> None:
        def rollback(conn: sqlite3.Connection) -> None:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

        await self.store._run(rollback, "rollback")
        self._clean = True

    async def _end(self) -> None:
        if self._holding:
            self._holding = False
            if not self._clean:
                self.store._reset_later()
            self.store._release()
