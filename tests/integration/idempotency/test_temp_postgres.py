"""The throwaway PostgreSQL server that tests use."""

from __future__ import annotations

import asyncpg
import pytest

from eventplatform.errors import PostgresStartError
from eventplatform.testing.postgres import TempPostgres

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


async def test_serves_on_loopback_and_removes_itself() -> None:
    with TempPostgres() as server:
        assert server.dsn.startswith("postgresql://postgres@127.0.0.1:")
        conn = await asyncpg.connect(server.dsn)
        try:
            assert await conn.fetchval("SELECT current_setting('listen_addresses')") == (
                "127.0.0.1"
            )
        finally:
            await conn.close()
        assert (server.socket_dir / f".s.PGSQL.{server.port}").exists()
        workdir = server.workdir
        assert workdir is not None
    assert not workdir.exists()
    assert not server.running
    with pytest.raises(PostgresStartError, match="not running"):
        _ = server.dsn


def test_postgres_dsn_fixture_points_at_a_live_server(postgres_dsn: str) -> None:
    assert postgres_dsn.startswith("postgres")
