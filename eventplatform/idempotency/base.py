"""The idempotency store protocol, the values it trades in, and the lifecycle every store shares.

A store remembers, per consumer group, which idempotency keys have had their effects applied,
so that a redelivered or duplicated event is skipped (DESIGN.md decision 6). Implementations:
:mod:`~eventplatform.idempotency.memory` (tests), :mod:`~eventplatform.idempotency.sqlite`
(embedded default, a file) and :mod:`~eventplatform.idempotency.postgres` (shared by instances).
All pass the same contract suite in ``tests/integration/idempotency/``.

A key of a group moves through these states::

    absent ──claim──▶ leased (owner, lease expiry) ──complete──▶ done ──TTL──▶ absent
       ▲                  │
       └──── release ─────┘   (or the lease expires, and another owner may claim it)

The consumer works a poll at a time through a :class:`Batch`::

    async with store.batch(group, owner=member) as batch:   # one DB transaction (SQLite, PG)
        claim = await batch.claim(keys)                     # one round trip for the whole poll
        for key in claim.fresh:
            async with batch.unit(key) as unit:             # SAVEPOINT: a failure undoes only it
                await handler(event, unit)                  # unit.execute(...) writes in the tx
    # exit: COMMIT effects and done-marks together; then commit the Kafka offsets

Or a key at a time, each in a transaction of its own, so that handlers waiting on I/O do not
take turns on one connection (the inbox pattern per event; a queue worker per record)::

    async with store.unit(group, key, owner=member) as unit:   # BEGIN; claim this key
        if unit.fresh:
            await handler(event, unit)                          # unit.execute(...) in the tx
    # exit: COMMIT the writes and the done-mark; an exception rolls both back
    # unit.done: applied earlier, skip it; unit.busy: another member holds it, try later

``store.session(group, owner=member)`` runs several such units one after the other on one
connection (what a consumer's worker does), sparing a pool round trip per key. How many
units can hold a transaction at once is :attr:`IdempotencyStore.concurrent_units`: the
PostgreSQL pool's size; 1 for SQLite, which has one writer.

After the batch exits normally, the consumer may commit the offset of every event whose key
came back ``done`` or was completed, and never commit past one that is ``busy`` or still
pending (its unit failed): those are claimed again later, or routed to a dead-letter topic and
then marked with :meth:`Batch.complete`.

In a **transactional** batch (SQLite and PostgreSQL, the default there) the handler's writes
through the unit commit in the same transaction as the done-marks: the inbox pattern, which is
the exactly-once case. A **non-transactional** batch (``transactional=False``, and always for
the memory store) is for effects outside the database: the claim commits a lease at once, the
effects run, and the done-marks are written in one statement when the batch exits. There the
lease is what keeps a second member away, so it must outlast the batch (see :meth:`Batch.renew`).
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_PURGE_BATCH",
    "DEFAULT_PURGE_INTERVAL",
    "DEFAULT_TABLE",
    "DEFAULT_TTL",
    "Batch",
    "Claim",
    "Clock",
    "IdempotencyStore",
    "KeyRecord",
    "KeyState",
    "KeyUnit",
    "Unit",
    "UnitSession",
    "new_owner_id",
]

log = logging.getLogger("eventplatform.idempotency")

#: Seconds a claim keeps other owners away; must outlast a batch's processing.
DEFAULT_LEASE = 30.0
#: Seconds a done key is remembered: Kafka's default retention (``log.retention.hours=168``),
#: so a key is known for as long as a record carrying it can be read again.
DEFAULT_TTL = 7 * 24 * 3600.0
#: Seconds between background purges of expired keys; None disables them.
DEFAULT_PURGE_INTERVAL = 300.0
#: Rows deleted per purge statement, so a purge never holds long locks.
DEFAULT_PURGE_BATCH = 1000
#: Table the SQL stores keep their keys in.
DEFAULT_TABLE = "eventplatform_idempotency"

#: Wall-clock seconds since the epoch; injectable so tests can move time.
Clock = Callable[[], float]


def new_owner_id() -> str:
    """An owner id for one process: ``host-pid-random``.

    Use one per consumer process and keep it for the process's life. Kafka's group member id
    changes on every rejoin, which would make a member's own live leases look foreign to it.
    """
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class Claim:
    """What claiming a poll's keys decided, one entry per distinct key.

    Attributes:
        fresh: keys this batch now holds, in first-seen order: run each of them once.
        done: keys whose effects were applied earlier (within the TTL): skip them, their
            offsets may be committed.
        busy: keys another owner holds: do not run them and do not commit offsets past them;
            claim them again later (the other owner finishes or its lease expires).
    """

    fresh: tuple[str, ...] = ()
    done: frozenset[str] = frozenset()
    busy: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key as a store holds it (times are seconds since the epoch).

    Attributes:
        group, key: the record's identity.
        owner: who claimed (or completed) the key.
        lease_until: when the claim lapses; None once done, and in a transactional batch,
            whose claim is the row lock itself.
        done_at: when the effects were recorded; None while only leased.
        expires_at: when the record is forgotten (done_at + TTL, or lease_until + TTL).
    """

    group: str
    key: str
    owner: str
    lease_until: float | None
    done_at: float | None
    expires_at: float

    @property
    def done(self) -> bool:
        """Whether the key's effects were recorded."""
        return self.done_at is not None


@runtime_checkable
class Unit(Protocol):
    """One event's work inside a batch: a savepoint in a transactional batch.

    Leaving the ``async with`` normally marks the key done (written when the batch commits);
    leaving it with an exception rolls back the unit's writes, leaves the key unfinished and
    lets the exception propagate. SQL is in the store's own dialect (``?`` for SQLite, ``$1``
    for PostgreSQL).
    """

    @property
    def key(self) -> str:
        """The idempotency key this unit runs."""

    @property
    def transactional(self) -> bool:
        """Whether :meth:`execute` and friends are available."""

    async def execute(self, sql: str, *args: Any) -> None:
        """Run one statement in the batch's transaction, inside this unit's savepoint.

        Raises:
            StoreNotTransactional: the batch is not transactional.
            IdempotencyStoreError: the statement failed.
            IdempotencyStoreUnavailable: the database connection failed.
            ResourceStateError: the unit is not open.
        """

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per argument tuple, as :meth:`execute` does.

        Raises:
            IdempotencyStoreError, IdempotencyStoreUnavailable, ResourceStateError: as
                :meth:`execute`.
        """

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run a query in the batch's transaction and return its rows.

        Raises:
            IdempotencyStoreError, IdempotencyStoreUnavailable, ResourceStateError: as
                :meth:`execute`.
        """


class KeyState(enum.Enum):
    """What claiming one key in a :class:`KeyUnit` found."""

    #: The unit holds the key: run it; a normal exit records it done with the unit's writes.
    FRESH = "fresh"
    #: Its effects were applied earlier (within the TTL): skip it.
    DONE = "done"
    #: Another owner holds it (a lease, or an open transaction past the lock timeout): do not
    #: run it now and do not acknowledge it; try again later.
    BUSY = "busy"


@runtime_checkable
class KeyUnit(Unit, Protocol):
    """One key claimed and run in a transaction of its own (``store.unit``, ``session.unit``).

    An async context manager. Entering claims the key (:attr:`state`). When fresh, a normal
    exit commits the unit's writes together with the key's done-mark; an exception rolls both
    back and leaves the key unfinished, to be claimed again. When done or busy, nothing is
    held and the statements raise.
    """

    @property
    def state(self) -> KeyState:
        """What the claim found (valid once entered)."""

    @property
    def fresh(self) -> bool:
        """Whether this unit holds the key: run the work."""

    @property
    def done(self) -> bool:
        """Whether the key's effects were applied earlier: skip the work."""

    @property
    def busy(self) -> bool:
        """Whether another owner holds the key: neither run nor acknowledge it now."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class UnitSession(Protocol):
    """Units of one group and owner run one after another on one connection.

    An async context manager; the connection is taken at the first unit and given back at exit.
    """

    def unit(self, key: str) -> KeyUnit:
        """The unit that claims and runs ``key`` (enter it with ``async with``).

        Raises:
            ResourceStateError: the session is not open, or another of its units is.
        """

    def expect(self, key: str | None) -> None:
        """A hint: the session's next unit will claim ``key`` (None: not known).

        A store may claim it together with the running unit's commit (PostgreSQL does); a
        wrong hint costs time, never correctness.
        """

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@runtime_checkable
class Batch(Protocol):
    """A poll's worth of keys of one consumer group, claimed and settled together.

    An async context manager. Transactional: one database transaction from entry to exit;
    a normal exit commits effects and done-marks together, an exception rolls everything back.
    Non-transactional: claims commit at once; exit (normal or not) records the completed keys
    as done and releases the others, because their effects have already happened elsewhere.
    """

    @property
    def group(self) -> str:
        """The consumer group."""

    @property
    def owner(self) -> str:
        """The member holding the batch's claims."""

    @property
    def transactional(self) -> bool:
        """Whether units can write in the batch's transaction."""

    @property
    def pending(self) -> frozenset[str]:
        """Keys claimed and not completed; released when the batch exits."""

    @property
    def completed(self) -> frozenset[str]:
        """Keys completed in this batch (done once it commits)."""

    @property
    def lost(self) -> frozenset[str]:
        """Keys whose lease passed to another owner before they were marked done.

        Only non-transactional batches lose leases; their effects may run twice. Set by
        :meth:`renew` and at exit.
        """

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def claim(self, keys: Iterable[str]) -> Claim:
        """Claim a poll's keys in one round trip; repeated keys count once.

        Keys already pending in this batch come back fresh; keys completed in it come back
        done. A transactional claim waits for keys another member's open batch holds (up to
        the store's lock or busy timeout) and then reports them done or busy. In a
        transactional batch, claims and units share one connection: claim between units, not
        while another task runs one.

        Raises:
            IdempotencyConflict: keys stayed locked past the lock timeout, or a deadlock.
            IdempotencyStoreUnavailable: the database cannot be reached.
            IdempotencyStoreError: the database refused the statement.
            ResourceStateError: the batch is not open.
        """

    def unit(self, key: str) -> AbstractAsyncContextManager[Unit]:
        """The unit that runs ``key``; units of a transactional batch run one at a time.

        Raises:
            IdempotencyStoreError: ``key`` is not pending in this batch (never claimed, not
                fresh, or already completed).
            ResourceStateError: the batch is not open.
        """

    def complete(self, key: str) -> None:
        """Mark a pending key done without a unit (e.g. after routing it to a dead-letter topic).

        Raises:
            IdempotencyStoreError: ``key`` is not pending in this batch.
            ResourceStateError: the batch is not open.
        """

    async def renew(self) -> frozenset[str]:
        """Extend the leases of the keys this batch holds; return the keys already lost.

        A no-op in a transactional batch, whose locks hold until it ends.

        Raises:
            IdempotencyStoreUnavailable, IdempotencyStoreError: as :meth:`claim`.
            ResourceStateError: the batch is not open.
        """


@runtime_checkable
class IdempotencyStore(Protocol):
    """Where a consumer group's idempotency keys live. An async context manager."""

    @property
    def transactional(self) -> bool:
        """Whether batches can hold the handler's writes (the inbox pattern)."""

    async def start(self) -> None:
        """Open the database (create the table when missing) and start the purge task.

        Raises:
            IdempotencyStoreUnavailable: the database cannot be reached.
            IdempotencyStoreError: the database refused to open or to create the table.
            ResourceStateError: the store was closed.
        """

    async def close(self) -> None:
        """Stop purging and release the database. Idempotent; waits for open batches."""

    async def execute(self, sql: str, *args: Any) -> None:
        """Run one statement in its own transaction, outside any batch (schema set-up).

        Raises:
            StoreNotTransactional: the store has no database (memory).
            ResourceStateError: the store is not started.
            IdempotencyStoreError, IdempotencyStoreUnavailable: the statement failed.
        """

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def batch(
        self,
        group: str,
        *,
        owner: str,
        lease: float | None = None,
        transactional: bool | None = None,
    ) -> Batch:
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

    @property
    def concurrent_units(self) -> int:
        """How many units or sessions can hold a transaction at once (SQLite: 1)."""

    def unit(self, group: str, key: str, *, owner: str, lease: float | None = None) -> KeyUnit:
        """Claim and run one key of ``group`` in a transaction of its own (``async with``).

        Entering it raises what :meth:`Batch.claim` raises, except that a key held past the
        lock timeout comes back busy.

        Raises:
            ConfigurationError: ``group``, ``owner`` or ``key`` is empty, or ``lease`` is not
                positive.
            ResourceStateError: the store is not started.
        """

    def session(self, group: str, *, owner: str, lease: float | None = None) -> UnitSession:
        """Units of ``group`` for ``owner`` that share one connection, one at a time.

        Raises:
            ConfigurationError, ResourceStateError: as :meth:`unit`.
        """

    async def lookup(self, group: str, keys: Iterable[str]) -> dict[str, KeyRecord]:
        """The records of ``keys`` that the store holds, expired or not, in one round trip.

        Raises:
            IdempotencyStoreUnavailable, IdempotencyStoreError: the query failed.
            ResourceStateError: the store is not started.
        """

    async def purge(self, *, batch_size: int | None = None) -> int:
        """Delete expired records, ``batch_size`` rows per statement; return how many.

        Runs in the background every ``purge_interval`` seconds; never on the per-event path.

        Raises:
            IdempotencyStoreUnavailable, IdempotencyStoreError: a delete failed.
            ResourceStateError: the store is not started.
        """
