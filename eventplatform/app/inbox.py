"""How an inbox app runs its handlers: one store transaction per poll, or one per event.

A **poll batch** (the default on SQLite) claims the poll's keys in one round trip and runs
every handler inside one database transaction, each in a savepoint: the handlers of a poll
take turns on that one connection. It is the cheapest way when handlers do not wait: one
``BEGIN``, one claim and one ``COMMIT`` per poll. But a handler that waits 20 ms on I/O caps
the process at ~50 events/s, whatever ``max_concurrency`` says.

**Key units** (PostgreSQL with ``max_concurrency > 1``) give each event a transaction of its
own on a pooled connection (``BEGIN``, the claim of its key, the handler's writes, ``COMMIT``:
the inbox pattern per event), so up to ``max_concurrency`` handlers per partition wait at once,
still in order per key. They cost one round trip per event besides the handler's (a
worker's ``COMMIT`` carries its next event's ``BEGIN`` and claim) instead of a few per poll;
the measurements behind the choice are in ``docs/decisions.md`` ("Concurrency inside the
inbox").

SQLite has one writer: its units cannot overlap, so an inbox there stays a poll batch, and a
``max_concurrency`` set explicitly above 1 gets a warning once at start.
"""

from __future__ import annotations

import logging
from typing import Any

from eventplatform.idempotency import IdempotencyStore

__all__ = ["key_units", "pool_options"]

log = logging.getLogger("eventplatform.app")

#: The PostgreSQL store's default pool size (``PostgresStore(max_connections=…)``).
_DEFAULT_POOL = 10


def pool_options(url: str, max_concurrency: int) -> dict[str, Any]:
    """Options for the store an app opens from its settings' URL.

    A PostgreSQL pool gets a connection per concurrent handler of a partition, plus one for
    the purge and lookups, so that key units never wait for a connection.
    """
    if url.split("://", 1)[0].lower().startswith("postgres"):
        return {"max_connections": max(_DEFAULT_POOL, max_concurrency + 1)}
    return {}


def key_units(
    store: IdempotencyStore,
    *,
    inbox: bool,
    max_concurrency: int,
    concurrency_asked: bool,
    transactions: str = "auto",
) -> bool:
    """Whether the app runs each event of its inbox in a key unit of its own; logs the choice.

    Args:
        store: the started store.
        inbox: whether handlers write through the store's transaction.
        max_concurrency: handlers run at once per partition.
        concurrency_asked: whether ``max_concurrency`` was set explicitly (not the default),
            which makes the SQLite warning worth a line.
        transactions: ``settings.consumer.inbox_transactions``: ``auto`` (per event when the
            store can run units at once and ``max_concurrency > 1``), ``event`` or ``poll``.
    """
    if not inbox or transactions == "poll":
        return False
    slots = store.concurrent_units
    if max_concurrency <= 1 and slots > 1 and transactions == "event":
        return True  # asked for: one transaction per event, one at a time
    if max_concurrency <= 1:
        return False
    if slots > 1:
        if slots < max_concurrency:
            log.warning(
                "max_concurrency=%d but the idempotency store %r runs at most %d transactions "
                "at once (its pool's max_connections - 1): give the pool more connections",
                max_concurrency,
                store,
                slots,
            )
        log.info(
            "inbox handlers run concurrently: each event in its own transaction on %r, up to "
            "%d per partition and %d in all",
            store,
            max_concurrency,
            slots,
        )
        return True
    if concurrency_asked:
        log.warning(
            "max_concurrency=%d does not make inbox handlers concurrent on %r: SQLite has one "
            "writer, so the handlers of a poll take turns in its transaction. Use a PostgreSQL "
            "store for handlers that wait on I/O, or inbox=False if they write nothing through "
            "ctx.transaction",
            max_concurrency,
            store,
        )
    return False
