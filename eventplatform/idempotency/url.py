"""Stores named by URL, the way settings and the command line name them.

``memory://``
    :class:`~eventplatform.idempotency.memory.MemoryStore`.
``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, ``sqlite:///:memory:``
    :class:`~eventplatform.idempotency.sqlite.SqliteStore`; three slashes then the path, as
    SQLAlchemy spells SQLite URLs, so a fourth slash makes the path absolute.
``postgresql://user:password@host:5432/database?sslmode=require``
    :class:`~eventplatform.idempotency.postgres.PostgresStore` (``postgres://`` and
    SQLAlchemy's ``postgresql+asyncpg://`` too); the query string goes to asyncpg as libpq
    connection parameters.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from eventplatform.errors import ConfigurationError
from eventplatform.idempotency.memory import MemoryStore
from eventplatform.idempotency.sqlite import SqliteStore
from eventplatform.idempotency.store import BaseStore

__all__ = ["open_store"]

_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")


def open_store(url: str, **options: Any) -> BaseStore:
    """The store ``url`` names, not started yet: use it as ``async with open_store(url) as s``.

    Args:
        url: ``memory://``, ``sqlite:///path.db`` or ``postgresql://…`` (see the module).
        options: keyword arguments of the store's class (``lease``, ``ttl``, ``table``, …).

    Raises:
        ConfigurationError: the scheme is unknown, the URL malformed, or an option is not one
            the store takes.
        ImportError: a PostgreSQL URL while asyncpg is not installed.
    """
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            f"idempotency store URL {url!r} has no scheme; use memory://, sqlite:///path.db "
            "or postgresql://…"
        )
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    store_cls: type[BaseStore]
    arguments: dict[str, Any]
    if scheme == "memory":
        if rest.strip("/"):
            raise ConfigurationError(f"a memory store URL is just memory://, got {url!r}")
        store_cls, arguments = MemoryStore, {}
    elif scheme == "sqlite":
        parts = urlsplit(url)
        if parts.netloc or parts.query or parts.fragment or len(parts.path) < 2:
            raise ConfigurationError(
                f"SQLite store URL {url!r} must be sqlite:///relative.db or "
                "sqlite:////absolute.db (no host, no query)"
            )
        store_cls, arguments = SqliteStore, {"path": unquote(parts.path[1:])}
    elif scheme in _POSTGRES_SCHEMES:
        # No host is valid: libpq (and asyncpg) then use PGHOST or the local unix socket.
        # asyncpg is an optional extra: import it only for a PostgreSQL URL.
        from eventplatform.idempotency.postgres import PostgresStore  # noqa: PLC0415

        store_cls, arguments = PostgresStore, {"dsn": f"postgresql://{rest}"}
    else:
        raise ConfigurationError(
            f"unknown idempotency store scheme {scheme!r} in {url!r}; use memory://, "
            "sqlite:///path.db or postgresql://…"
        )
    clash = set(arguments) & set(options)
    if clash:
        raise ConfigurationError(f"{sorted(clash)[0]} comes from the URL; do not pass it too")
    try:
        return store_cls(**arguments, **options)
    except TypeError as exc:
        raise ConfigurationError(f"{store_cls.__name__} does not take that option: {exc}") from exc
