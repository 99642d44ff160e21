"""The inbox proofs' effect tables, read from the test process while the apps write them.

The table has no unique constraint on the idempotency key on purpose: exactly-once is what
is being proven, so a key applied twice must show up as two rows rather than as a refused
insert. For SQLite it lives in the store's own file (so the handler's insert commits in the
same transaction as the key); for PostgreSQL in the store's database.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from tests.integration.proofs.services import EFFECT_COLUMNS

_COLUMNS_SQL = (
    "idempotency_key TEXT NOT NULL, event_id TEXT NOT NULL, seq BIGINT NOT NULL,"
    " record_partition INTEGER NOT NULL, record_offset BIGINT NOT NULL, pid INTEGER NOT NULL"
)
assert _COLUMNS_SQL.count(" NOT NULL") == len(EFFECT_COLUMNS)


class EffectTable(Protocol):
    """Where an inbox app's effects land, as the test process sees it."""

    name: str
    store_url: str

    async def create(self) -> None:
        """Create the (empty) table."""

    async def count(self) -> int:
        """Rows so far."""

    async def per_key(self) -> Counter[str]:
        """Rows per idempotency key."""

    async def per_pid(self) -> Counter[int]:
        """Rows per app process."""

    async def rows_of(self, keys: list[str]) -> list[tuple[Any, ...]]:
        """The rows of ``keys`` (all columns), for failure messages."""

    async def close(self) -> None:
        """Release the test's connection."""


class SqliteEffects:
    """The effect table in the SQLite store's file."""

    def __init__(self, path: Path, name: str = "effects") -> None:
        self.path = path
        self.name = name
        self.store_url = f"sqlite:///{path}"  # path is absolute: four slashes

    def _query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    async def _run(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._query, sql, *args)

    async def create(self) -> None:
        def setup() -> None:
            conn = sqlite3.connect(self.path)
            try:
                conn.execute("PRAGMA journal_mode=WAL")  # readers never block the app
                conn.execute(f"CREATE TABLE {self.name} ({_COLUMNS_SQL})")
                conn.commit()
            finally:
                conn.close()

        await asyncio.to_thread(setup)

    async def count(self) -> int:
        [(n,)] = await self._run(f"SELECT count(*) FROM {self.name}")
        return int(n)

    async def per_key(self) -> Counter[str]:
        sql = f"SELECT idempotency_key, count(*) FROM {self.name} GROUP BY idempotency_key"
        return Counter({key: int(n) for key, n in await self._run(sql)})

    async def per_pid(self) -> Counter[int]:
        sql = f"SELECT pid, count(*) FROM {self.name} GROUP BY pid"
        return Counter({int(pid): int(n) for pid, n in await self._run(sql)})

    async def rows_of(self, keys: list[str]) -> list[tuple[Any, ...]]:
        marks = ", ".join("?" * len(keys))
        sql = f"SELECT * FROM {self.name} WHERE idempotency_key IN ({marks}) ORDER BY seq"
        return await self._run(sql, *keys) if keys else []

    async def close(self) -> None:
        return None


class PostgresEffects:
    """The effect table in the PostgreSQL store's database (one table per test)."""

    def __init__(self, dsn: str, name: str) -> None:
        self.dsn = dsn
        self.name = name
        self.store_url = dsn
        self._conn: Any = None

    async def _connection(self) -> Any:
        if self._conn is None:
            self._conn = await asyncpg.connect(self.dsn)
        return self._conn

    async def create(self) -> None:
        conn = await self._connection()
        await conn.execute(f"CREATE TABLE {self.name} ({_COLUMNS_SQL})")

    async def count(self) -> int:
        conn = await self._connection()
        return int(await conn.fetchval(f"SELECT count(*) FROM {self.name}"))

    async def per_key(self) -> Counter[str]:
        conn = await self._connection()
        sql = f"SELECT idempotency_key, count(*) FROM {self.name} GROUP BY idempotency_key"
        return Counter({row[0]: int(row[1]) for row in await conn.fetch(sql)})

    async def per_pid(self) -> Counter[int]:
        conn = await self._connection()
        sql = f"SELECT pid, count(*) FROM {self.name} GROUP BY pid"
        return Counter({int(row[0]): int(row[1]) for row in await conn.fetch(sql)})

    async def rows_of(self, keys: list[str]) -> list[tuple[Any, ...]]:
        conn = await self._connection()
        sql = f"SELECT * FROM {self.name} WHERE idempotency_key = any($1::text[]) ORDER BY seq"
        return [tuple(row) for row in await conn.fetch(sql, keys)]

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.execute(f"DROP TABLE IF EXISTS {self.name}")
            await conn.close()


async def exactly_once(effects: EffectTable, keys: list[str]) -> tuple[int, list[str]]:
    """Check that ``effects`` holds one row per key of ``keys`` and nothing else.

    Returns:
        the number of rows, and the offenders (empty when exactly once held), each
        ``key: n rows`` for a lost (0) or duplicated (2+) key, or an unexpected key.
    """
    per_key = await effects.per_key()
    expected = set(keys)
    offenders = [f"{key}: {per_key[key]} rows" for key in keys if per_key[key] != 1]
    offenders += [
        f"{key}: unexpected, {n} rows" for key, n in per_key.items() if key not in expected
    ]
    return sum(per_key.values()), offenders


async def explain(effects: EffectTable, offenders: list[str], limit: int = 20) -> str:
    """The offenders (at most ``limit``) with their rows, for a failure message."""
    keys = [line.split(":", 1)[0] for line in offenders[:limit]]
    rows = await effects.rows_of(keys)
    shown = "\n".join(offenders[:limit])
    more = f"\n… and {len(offenders) - limit} more" if len(offenders) > limit else ""
    columns = ", ".join(EFFECT_COLUMNS)
    listing = "\n".join(map(str, rows))
    return f"{len(offenders)} offending key(s):\n{shown}{more}\nrows ({columns}):\n{listing}"
