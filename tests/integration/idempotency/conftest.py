"""A harness that runs the same contract tests against the memory, SQLite and PostgreSQL stores.

Each test gets its own SQLite file or its own PostgreSQL tables, a fake clock shared by every
store it opens, and an ``effects`` table (a Counter for effects outside a database) so tests
can count how often a handler's effect happened.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from eventplatform.idempotency import Unit, open_store
from eventplatform.idempotency.store import BaseStore

__all__ = ["FakeClock", "Harness"]

KINDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
SQL_KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


class FakeClock:
    """Wall-clock seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Harness:
    """Stores of one kind on one backing database, and the effects their handlers wrote."""

    def __init__(self, kind: str, tmp_path: Path, dsn: str | None) -> None:
        self.kind = kind
        self.clock = FakeClock()
        suffix = uuid.uuid4().hex[:10]
        self.table = f"idem_{suffix}"
        self.effects_table = f"effects_{suffix}"
        self.sqlite_path = tmp_path / "store.db"
        self.dsn = dsn
        self.outside: Counter[str] = Counter()  # effects outside any database
        self._stores: list[BaseStore] = []
        self._last_statements: list[str] = []  # SQLite: the last statement each store began

    @property
    def url(self) -> str:
        if self.kind == "memory":
            return "memory://"
        if self.kind == "sqlite":
            return f"sqlite:///{self.sqlite_path}"  # absolute: sqlite:////tmp/…
        assert self.dsn is not None
        return self.dsn

    @property
    def insert_effect(self) -> str:
        mark = "?" if self.kind == "sqlite" else "$1"
        return f"INSERT INTO {self.effects_table} (key) VALUES ({mark})"

    async def store(self, **options: Any) -> BaseStore:
        """A started store; every call is another member (memory: the same one)."""
        if self.kind == "memory" and self._stores:
            return self._stores[0]
        options = {"clock": self.clock, "purge_interval": None, **options}
        if self.kind != "memory":
            options.setdefault("table", self.table)
        if self.kind == "sqlite":
            options["trace"] = self._tracer(options.get("trace"))
        store = open_store(self.url, **options)
        await store.start()
        self._stores.append(store)
        return store

    def _tracer(self, chained: Callable[[str], None] | None) -> Callable[[str], None]:
        index = len(self._last_statements)
        self._last_statements.append("")

        def trace(statement: str) -> None:
            self._last_statements[index] = statement
            if chained is not None:
                chained(statement)

        return trace

    async def waits_for_a_lock(self) -> bool:
        """Whether a member now waits for a lock that another member holds.

        PostgreSQL: a backend waits on a lock in a statement on the store's table. SQLite: a
        store began ``BEGIN IMMEDIATE`` (traced when the statement starts, before it waits up
        to ``busy_timeout`` for the write lock) and nothing after it. Memory: never.
        """
        if self.kind == "sqlite":
            return "BEGIN IMMEDIATE" in self._last_statements
        if self.kind == "postgres":
            conn = await asyncpg.connect(self.dsn)
            try:
                waiting = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND strpos(query, $1) > 0",
                    self.table,
                )
            finally:
                await conn.close()
            return bool(waiting)
        return False

    async def setup(self) -> None:
        ddl = f"CREATE TABLE {self.effects_table} (key TEXT NOT NULL)"
        if self.kind == "sqlite":
            with sqlite3.connect(self.sqlite_path) as conn:
                conn.execute(ddl)
            conn.close()
        elif self.kind == "postgres":
            conn = await asyncpg.connect(self.dsn)
            try:
                await conn.execute(ddl)
            finally:
                await conn.close()

    async def teardown(self) -> None:
        for store in self._stores:
            await store.close()
        if self.kind == "postgres":
            conn = await asyncpg.connect(self.dsn)
            try:
                await conn.execute(
                    f"DROP TABLE IF EXISTS {self.table}; DROP TABLE IF EXISTS {self.effects_table}"
                )
            finally:
                await conn.close()

    async def effect(self, unit: Unit) -> None:
        """The handler's effect: a row in the batch's transaction, else a counter bump."""
        if unit.transactional:
            await unit.execute(self.insert_effect, unit.key)
        else:
            self.outside[unit.key] += 1

    async def effects(self) -> Counter[str]:
        """How many times each key's effect happened (committed rows plus outside effects)."""
        counted = Counter(self.outside)
        query = f"SELECT key FROM {self.effects_table}"
        if self.kind == "sqlite":
            with sqlite3.connect(self.sqlite_path) as conn:
                counted.update(row[0] for row in conn.execute(query))
            conn.close()
        elif self.kind == "postgres":
            conn = await asyncpg.connect(self.dsn)
            try:
                counted.update(row[0] for row in await conn.fetch(query))
            finally:
                await conn.close()
        return counted


@pytest.fixture
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path, str | None]:
    kind: str = request.param
    dsn = request.getfixturevalue("postgres_dsn") if kind == "postgres" else None
    return kind, tmp_path, dsn


@pytest.fixture
async def harness(backend: tuple[str, Path, str | None]) -> AsyncIterator[Harness]:
    h = Harness(*backend)
    await h.setup()
    try:
        yield h
    finally:
        await h.teardown()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # `harness` runs a test on all three stores; `sql_harness` on the transactional ones.
    if "backend" in metafunc.fixturenames:
        kinds = SQL_KINDS if "sql_harness" in metafunc.fixturenames else KINDS
        metafunc.parametrize("backend", kinds, indirect=True)


@pytest.fixture
async def sql_harness(harness: Harness) -> Harness:
    return harness
