"""The real Kafka broker (and PostgreSQL) the benchmarks run against, and their topics.

One broker serves a whole ``python -m benchmarks`` run: :func:`kafka` provisions it the way
tests do (DESIGN.md decision 1: configured cluster → Docker → Java + Maven), and a nested
:func:`kafka` reuses it, so each benchmark run alone still gets a broker of its own.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from eventplatform.devkafka import provision
from eventplatform.settings import load_settings
from eventplatform.testing.postgres import ENV_DSN, TempPostgres

__all__ = ["create_topic", "kafka", "postgres", "unique"]

_shared: list[str] = []


@contextmanager
def kafka() -> Iterator[str]:
    """``host:port`` of a ready broker: the one already provisioned here, else a new one.

    Raises:
        ProvisioningError: no broker could be provided (the message says what to install).
    """
    if _shared:
        yield _shared[-1]
        return
    print("provisioning a Kafka broker …", flush=True)
    with provision(load_settings()) as broker:
        _shared.append(broker.bootstrap_servers)
        try:
            yield broker.bootstrap_servers
        finally:
            _shared.pop()


@contextmanager
def postgres() -> Iterator[str]:
    """A PostgreSQL DSN: ``$EVENTPLATFORM_TEST_POSTGRES_DSN``, else a throwaway server.

    Raises:
        PostgresStartError: no server binaries, and the variable is not set.
    """
    dsn = os.environ.get(ENV_DSN, "").strip()
    if dsn:
        yield dsn
        return
    with TempPostgres() as server:
        yield server.dsn


def unique(name: str) -> str:
    """A topic or group name no earlier run used."""
    return f"bench-{name}-{uuid.uuid4().hex[:8]}"


async def create_topic(bootstrap_servers: str, name: str, partitions: int) -> str:
    """Create topic ``name`` and wait until its leaders are known; returns ``name``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
        for _ in range(100):
            described = await admin.describe_topics([name])
            found = described[0].get("partitions") or []
            if len(found) == partitions and all(p.get("leader", -1) >= 0 for p in found):
                break
            await asyncio.sleep(0.05)
    finally:
        await admin.close()
    return name
