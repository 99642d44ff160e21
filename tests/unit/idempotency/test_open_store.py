"""Stores built from URLs, their settings checks, and the optional asyncpg import."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from eventplatform.errors import ConfigurationError, PostgresStartError
from eventplatform.idempotency import MemoryStore, PostgresStore, SqliteStore, open_store
from eventplatform.testing.postgres import find_bin_dir


def test_memory_url() -> None:
    store = open_store("memory://", lease=5)
    assert isinstance(store, MemoryStore)
    assert store.lease == 5.0


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///keys.db", "keys.db"),
        ("sqlite:///data/keys.db", "data/keys.db"),
        ("sqlite:////var/lib/app/keys.db", "/var/lib/app/keys.db"),
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite:///with%20space.db", "with space.db"),
    ],
)
def test_sqlite_urls_follow_sqlalchemy(url: str, path: str) -> None:
    store = open_store(url)
    assert isinstance(store, SqliteStore)
    assert store.path == path


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:secret@db:5432/events?sslmode=require",
        "postgres://app:secret@db:5432/events?sslmode=require",
        "postgresql+asyncpg://app:secret@db:5432/events?sslmode=require",
    ],
)
def test_postgres_urls(url: str) -> None:
    store = open_store(url, table="app.keys", lock_timeout=2)
    assert isinstance(store, PostgresStore)
    assert store.dsn == "postgresql://app:secret@db:5432/events?sslmode=require"
    assert store.lock_timeout == 2.0
    assert "secret" not in repr(store)


def test_postgres_url_without_host_means_the_local_socket() -> None:
    store = open_store("postgresql:///events")
    assert isinstance(store, PostgresStore)
    assert store.dsn == "postgresql:///events"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("keys.db", "no scheme"),
        ("redis://localhost", "unknown idempotency store scheme 'redis'"),
        ("memory://elsewhere", "just memory://"),
        ("sqlite://", "sqlite:///relative.db"),
        ("sqlite:///", "sqlite:///relative.db"),
        ("sqlite://host/keys.db", "no host"),
        ("sqlite:///keys.db?mode=ro", "no query"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        open_store(url)


def test_options_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="does not take"):
        open_store("memory://", colour="blue")
    with pytest.raises(ConfigurationError, match="path comes from the URL"):
        open_store("sqlite:///a.db", path="b.db")
    with pytest.raises(ConfigurationError, match="synchronous"):
        open_store("sqlite:///a.db", synchronous="OFF")


@pytest.mark.parametrize("table", ["", "1abc", "keys; DROP TABLE x", "a.b", "x" * 64])
def test_sqlite_table_names_are_plain_identifiers(table: str) -> None:
    with pytest.raises(ConfigurationError, match="idempotency table"):
        SqliteStore(path="keys.db", table=table)


def test_postgres_table_may_name_a_schema() -> None:
    assert PostgresStore(dsn="postgresql://h/db", table="app.keys").table == "app.keys"
    with pytest.raises(ConfigurationError, match=r"\[schema.\]table"):
        PostgresStore(dsn="postgresql://h/db", table="a.b.c")


def test_postgres_store_without_asyncpg_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # makes `import asyncpg` fail
    monkeypatch.delitem(sys.modules, "eventplatform.idempotency.postgres")
    with pytest.raises(ImportError, match=r"pip install 'eventplatform\[postgres\]'"):
        importlib.import_module("eventplatform.idempotency.postgres")


def test_missing_postgres_binaries_say_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(PostgresStartError, match="apt-get install postgresql"):
        find_bin_dir(tmp_path)
