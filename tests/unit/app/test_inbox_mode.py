"""How an inbox app chooses between a transaction per poll and one per event."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from eventplatform.app.inbox import key_units, pool_options
from eventplatform.idempotency import MemoryStore, PostgresStore, SqliteStore


def postgres(connections: int = 17) -> PostgresStore:
    return PostgresStore(dsn="postgresql://u@127.0.0.1/db", max_connections=connections)


def test_postgres_runs_a_transaction_per_event_when_concurrency_is_asked() -> None:
    assert key_units(postgres(), inbox=True, max_concurrency=16, concurrency_asked=False)
    assert not key_units(postgres(), inbox=True, max_concurrency=1, concurrency_asked=True)
    assert not key_units(
        postgres(), inbox=True, max_concurrency=16, concurrency_asked=True, transactions="poll"
    )
    assert key_units(
        postgres(), inbox=True, max_concurrency=1, concurrency_asked=True, transactions="event"
    )
    assert not key_units(postgres(), inbox=False, max_concurrency=16, concurrency_asked=True)


def test_a_pool_smaller_than_the_concurrency_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="eventplatform.app"):
        assert key_units(postgres(5), inbox=True, max_concurrency=16, concurrency_asked=True)
    assert "at most 4 transactions at once" in caplog.text


def test_sqlite_warns_once_that_it_has_one_writer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteStore(path=tmp_path / "keys.db")
    with caplog.at_level(logging.WARNING, logger="eventplatform.app"):
        assert not key_units(store, inbox=True, max_concurrency=8, concurrency_asked=True)
    [warning] = caplog.records
    assert "SQLite has one writer" in warning.getMessage()
    assert "max_concurrency=8" in warning.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eventplatform.app"):
        # The default max_concurrency was not asked for: no warning for every SQLite app.
        assert not key_units(store, inbox=True, max_concurrency=16, concurrency_asked=False)
        assert not key_units(MemoryStore(), inbox=False, max_concurrency=16, concurrency_asked=True)
    assert caplog.records == []


def test_an_app_built_postgres_pool_has_a_connection_per_handler() -> None:
    assert pool_options("postgresql://u@h/db", 16) == {"max_connections": 17}
    assert pool_options("postgres://u@h/db", 4) == {"max_connections": 10}
    assert pool_options("sqlite:///keys.db", 16) == {}
