"""Idempotency stores: which keys a consumer group has handled, across crashes and rebalances.

One protocol (:class:`IdempotencyStore`, with :class:`Batch` and :class:`Unit`) and three
stores: :class:`MemoryStore` for tests, :class:`SqliteStore` (a file, the embedded default)
and :class:`PostgresStore` (shared by instances; needs the ``postgres`` extra, imported only
when used). :func:`open_store` builds one from a URL. See :mod:`eventplatform.idempotency.base`
for the semantics and the batch/unit shape a consumer loop drives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventplatform.idempotency.base import (
    DEFAULT_LEASE,
    DEFAULT_TTL,
    Batch,
    Claim,
    IdempotencyStore,
    KeyRecord,
    KeyState,
    KeyUnit,
    Unit,
    UnitSession,
    new_owner_id,
)
from eventplatform.idempotency.memory import MemoryStore
from eventplatform.idempotency.sqlite import SqliteStore, SqliteUnit
from eventplatform.idempotency.url import open_store

if TYPE_CHECKING:
    from eventplatform.idempotency.postgres import PostgresStore, PostgresUnit

__all__ = [
    "DEFAULT_LEASE",
    "DEFAULT_TTL",
    "Batch",
    "Claim",
    "IdempotencyStore",
    "KeyRecord",
    "KeyState",
    "KeyUnit",
    "MemoryStore",
    "PostgresStore",
    "PostgresUnit",
    "SqliteStore",
    "SqliteUnit",
    "Unit",
    "UnitSession",
    "new_owner_id",
    "open_store",
]


def __getattr__(name: str) -> Any:
    # asyncpg is an optional extra: import the PostgreSQL store only when it is asked for.
    if name in ("PostgresStore", "PostgresUnit"):
        from eventplatform.idempotency import postgres  # noqa: PLC0415

        return getattr(postgres, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
