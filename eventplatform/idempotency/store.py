"""What every idempotency store shares: settings checks, started/closed states, the purger.

:class:`BaseStore` is the abstract seam the three stores implement (the shape of
pydantic-settings' source providers): it resolves and checks the settings, enforces the
lifecycle (:class:`~eventplatform.errors.ResourceStateError` before ``start()`` and after
``close()``), runs the background purge and validates batch arguments; each store supplies the
``_open``/``_close``/``_new_batch``/``_lookup``/``_purge_chunk`` hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import re
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from eventplatform.errors import (
    ConfigurationError,
    EventPlatformError,
    ResourceStateError,
    StoreNotTransactional,
)
from eventplatform.idempotency.base import (
    DEFAULT_LEASE,
    DEFAULT_PURGE_BATCH,
    DEFAULT_PURGE_INTERVAL,
    DEFAULT_TTL,
    Clock,
    KeyRecord,
    log,
)
from eventplatform.idempotency.units import BatchKeyUnit, BatchUnitSession

if TYPE_CHECKING:
    from eventplatform.idempotency.base import KeyUnit, UnitSession
    from eventplatform.idempotency.batch import BaseBatch

__all__ = ["BaseStore", "non_empty", "positive", "table_names"]


class _State(enum.Enum):
    NEW = "new"
    STARTED = "started"
    CLOSED = "closed"


def positive(name: str, value: float) -> float:
    """``value`` as a float if it is a positive number.

    Raises:
        ConfigurationError: it is not.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"idempotency store setting {name} must be > 0, got {value!r}")
    return float(value)


def non_empty(name: str, value: str) -> str:
    """``value`` if it is a non-empty string.

    Raises:
        ConfigurationError: it is not.
    """
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} must be a non-empty string, got {value!r}")
    return value


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def table_names(table: str, *, schema_allowed: bool) -> tuple[str, str]:
    """The quoted ``table`` (``schema.table`` where allowed) and its quoted expiry index name.

    Names are restricted to plain identifiers instead of being escaped, because they are
    spliced into SQL text (tables cannot be bound as parameters).

    Raises:
        ConfigurationError: the name is not one or (where allowed) two plain identifiers.
    """
    parts = table.split(".") if isinstance(table, str) else []
    if not 1 <= len(parts) <= (2 if schema_allowed else 1) or not all(
        _IDENTIFIER.fullmatch(part) for part in parts
    ):
        form = "[schema.]table" if schema_allowed else "table"
        raise ConfigurationError(
            f"idempotency table {table!r} must be {form} made of letters, digits and "
            "underscores (at most 63 each)"
        )
    index = f"{parts[-1][:50]}_expires_at"
    return ".".join(f'"{part}"' for part in parts), f'"{index}"'


class BaseStore(ABC):
    """What every store shares: settings, the started/closed states, the purge task.

    Subclasses implement the ``_open``/``_close``/``_new_batch``/``_lookup``/``_purge_chunk``
    hooks and set ``_transactional``.
    """

    _transactional: bool = False

    def __init__(
        self,
        *,
        lease: float | None = None,
        ttl: float | None = None,
        purge_interval: float | None = DEFAULT_PURGE_INTERVAL,
        purge_batch: int = DEFAULT_PURGE_BATCH,
        clock: Clock | None = None,
    ) -> None:
        self._state = _State.NEW
        self.lease = positive("lease", DEFAULT_LEASE if lease is None else lease)
        self.ttl = positive("ttl", DEFAULT_TTL if ttl is None else ttl)
        self.purge_interval = (
            None if purge_interval is None else positive("purge_interval", purge_interval)
        )
        self.purge_batch = int(positive("purge_batch", purge_batch))
        self._clock = clock
        self._purger: asyncio.Task[None] | None = None

    @property
    def transactional(self) -> bool:
        """Whether batches can hold the handler's writes (the inbox pattern)."""
        return self._transactional

    @property
    def started(self) -> bool:
        """Whether the store is started and not closed."""
        return self._state is _State.STARTED

    def now(self) -> float:
        """The store's clock: the injected one, else ``time.time()``."""
        return self._clock() if self._clock is not None else time.time()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the database (create the table when missing) and start the purge task.

        Idempotent while started.

        Raises:
            IdempotencyStoreUnavailable: the database cannot be reached.
            IdempotencyStoreError: the database refused to open or to create the table.
            ResourceStateError: the store was closed; stores are not restartable.
        """
        if self._state is _State.STARTED:
            return
        if self._state is _State.CLOSED:
            raise ResourceStateError(f"{type(self).__name__} is closed; create a new one")
        await self._open()
        self._state = _State.STARTED
        if self.purge_interval is not None:
            self._purger = asyncio.create_task(
                self._purge_every(self.purge_interval), name=f"{type(self).__name__}.purge"
            )

    async def close(self) -> None:
        """Stop purging and release the database. Idempotent; waits for open batches."""
        if self._state is not _State.STARTED:
            self._state = _State.CLOSED
            return
        self._state = _State.CLOSED
        purger, self._purger = self._purger, None
        if purger is not None:
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger
        await self._close()

    async def execute(self, sql: str, *args: Any) -> None:
        """Run one statement on the store's database in its own transaction, outside any batch.

        For set-up, such as an app's ``on_startup`` hook creating the tables its handlers
        write through ``ctx.transaction`` (``CREATE TABLE IF NOT EXISTS …``); the same
        placeholders and values work on SQLite and PostgreSQL (``$1``, UUID, Decimal,
        datetime).

        Raises:
            StoreNotTransactional: the store has no database (memory).
            ResourceStateError: the store is not started.
            IdempotencyStoreError, IdempotencyStoreUnavailable: the statement failed.
        """
        self.check_started()
        await self._execute(sql, args)

    async def _execute(self, sql: str, args: tuple[Any, ...]) -> None:
        raise StoreNotTransactional(f"{type(self).__name__} has no database to run {sql!r} on")

    def __del__(self) -> None:
        # Like aiokafka's clients: a store dropped while started leaks a connection or a
        # thread; say so instead of failing later in an unrelated place.
        if getattr(self, "_state", None) is _State.STARTED:
            warnings.warn(
                f"unclosed {type(self).__name__}; use `async with` or await close()",
                ResourceWarning,
                stacklevel=1,
                source=self,
            )

    def check_started(self) -> None:
        """Raise unless the store is started.

        Raises:
            ResourceStateError: it was never started or is closed.
        """
        if self._state is not _State.STARTED:
            what = "closed" if self._state is _State.CLOSED else "not started"
            raise ResourceStateError(
                f"{type(self).__name__} is {what}; use `async with store:` or await start()"
            )

    def batch(
        self,
        group: str,
        *,
        owner: str,
        lease: float | None = None,
        transactional: bool | None = None,
    ) -> BaseBatch:
        """A batch of ``group``'s keys claimed by ``owner`` (enter it with ``async with``).

        Args:
            group: the consumer group the keys belong to.
            owner: the member claiming them, stable for the process (:func:`new_owner_id`).
            lease: seconds the claims keep other owners away; the store's default when None.
            transactional: whether units write in the batch's transaction; the store's
                capability when None.

        Raises:
            ConfigurationError: ``group`` or ``owner`` is empty, or ``lease`` not positive.
            StoreNotTransactional: a transactional batch was asked of a store that has none.
            ResourceStateError: the store is not started.
        """
        self.check_started()
        non_empty("group", group)
        non_empty("owner", owner)
        lease = self.lease if lease is None else positive("lease", lease)
        if transactional is None:
            transactional = self._transactional
        elif transactional and not self._transactional:
            raise StoreNotTransactional(
                f"{type(self).__name__} cannot hold a handler's writes in a transaction; "
                "use transactional=False or a SQLite/PostgreSQL store"
            )
        return self._new_batch(group, owner, lease, transactional)

    @property
    def concurrent_units(self) -> int:
        """How many units or sessions can hold a transaction at once.

        1 for a transactional store with one connection (SQLite: one writer); unbounded for
        a store without transactions (its units hold leases, not connections).
        """
        return 1 if self._transactional else 1 << 30

    def unit(self, group: str, key: str, *, owner: str, lease: float | None = None) -> KeyUnit:
        """Claim and run one key of ``group`` in a transaction of its own (``async with``).

        Entering it claims the key: ``unit.fresh`` (run the work: a normal exit commits its
        writes through the unit with the key's done-mark; an exception rolls both back),
        ``unit.done`` (applied earlier: skip it) or ``unit.busy`` (another owner holds it, or
        held it past the lock timeout: try again later). Entering raises what
        :meth:`~eventplatform.idempotency.base.Batch.claim` raises otherwise.

        Raises:
            ConfigurationError: ``group``, ``key`` or ``owner`` is empty, or ``lease`` is not
                positive.
            ResourceStateError: the store is not started.
        """
        self.check_started()
        non_empty("group", group)
        non_empty("owner", owner)
        non_empty("key", key)
        lease = self.lease if lease is None else positive("lease", lease)
        return self._new_key_unit(group, key, owner, lease)

    def session(self, group: str, *, owner: str, lease: float | None = None) -> UnitSession:
        """Units of ``group`` for ``owner`` run one after another on one connection.

        ``async with store.session(group, owner=o) as s:`` then ``async with s.unit(key)``
        as :meth:`unit` describes, without a pool round trip per key.

        Raises:
            ConfigurationError: ``group`` or ``owner`` is empty, or ``lease`` not positive.
            ResourceStateError: the store is not started.
        """
        self.check_started()
        non_empty("group", group)
        non_empty("owner", owner)
        lease = self.lease if lease is None else positive("lease", lease)
        return self._new_session(group, owner, lease)

    # The PostgreSQL store overrides both with units on a connection of their own.

    def _new_key_unit(self, group: str, key: str, owner: str, lease: float) -> KeyUnit:
        """A key unit made of a batch of one (correct on every store)."""
        return BatchKeyUnit(self, group, key, owner, lease)

    def _new_session(self, group: str, owner: str, lease: float) -> UnitSession:
        """A session of batch-of-one units."""
        return BatchUnitSession(self, group, owner, lease)

    async def lookup(self, group: str, keys: Iterable[str]) -> dict[str, KeyRecord]:
        """The records of ``keys`` that the store holds, expired or not, in one round trip.

        Raises:
            IdempotencyStoreUnavailable, IdempotencyStoreError: the query failed.
            ResourceStateError: the store is not started.
        """
        self.check_started()
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        return await self._lookup(non_empty("group", group), wanted)

    async def purge(self, *, batch_size: int | None = None) -> int:
        """Delete expired records, ``batch_size`` rows per statement; return how many.

        Each statement is its own short transaction, so batches running meanwhile wait at
        most for one of them; rows an open batch holds are skipped and purged next time.

        Raises:
            IdempotencyStoreUnavailable, IdempotencyStoreError: a delete failed.
            ResourceStateError: the store is not started.
        """
        self.check_started()
        size = self.purge_batch if batch_size is None else int(positive("batch_size", batch_size))
        total = 0
        while True:
            deleted = await self._purge_chunk(size)
            total += deleted
            if deleted < size:
                return total

    async def _purge_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                purged = await self.purge()
            except EventPlatformError as exc:
                # The next round retries; a failed purge only delays forgetting keys.
                log.warning("purging expired idempotency keys failed: %s", exc)
            else:
                if purged:
                    log.debug("purged %d expired idempotency keys", purged)

    @abstractmethod
    async def _open(self) -> None:
        """Connect and create the schema; clean up after itself when it fails."""

    @abstractmethod
    async def _close(self) -> None:
        """Release connections and threads."""

    @abstractmethod
    def _new_batch(self, group: str, owner: str, lease: float, transactional: bool) -> BaseBatch:
        """A new, unentered batch."""

    @abstractmethod
    async def _lookup(self, group: str, keys: list[str]) -> dict[str, KeyRecord]:
        """Fetch the records of distinct ``keys``."""

    @abstractmethod
    async def _purge_chunk(self, limit: int) -> int:
        """Delete at most ``limit`` expired records in one statement; return how many."""
