"""Fixtures of the proofs: names, the app processes' environment, a publisher, effect tables.

Every proof gets its own topics, consumer group and Kafka-log registry topic (shared by the
test's producer and its app processes, which cannot share an in-memory registry). App
processes get short session timeouts, so that a member SIGKILLed without a LeaveGroup is
expelled after ~6 s (the broker's ``group.min.session.timeout.ms``) and not after the default
10 s.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio

from eventplatform.producer import EventProducer
from eventplatform.settings import Settings, load_settings
from tests.integration.proofs.effects import EffectTable, PostgresEffects, SqliteEffects
from tests.integration.proofs.processes import child_environment


class Names:
    """The topics, group and registry topic of one proof."""

    def __init__(self, unique_topic: Callable[[str], str]) -> None:
        self.topic = unique_topic("deposits")
        self.output = unique_topic("receipts")
        self.registry = unique_topic("registry")
        self.group = unique_topic("group")


@pytest.fixture
def names(unique_topic: Callable[[str], str]) -> Names:
    """Fresh names for the proof."""
    return Names(unique_topic)


@pytest.fixture
def rng(request: pytest.FixtureRequest, report: Callable[[str], None]) -> random.Random:
    """A seeded random generator; the seed is printed so that a failing run can be replayed."""
    seed = random.SystemRandom().randrange(2**32)
    report(f"{request.node.name}: seed={seed}")
    return random.Random(seed)


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Callable[[str], None]:
    """Print a line to the terminal even when output is captured (the proofs' figures)."""

    def say(line: str) -> None:
        with capsys.disabled():
            print(f"\n[proof] {line}", flush=True)

    return say


@pytest.fixture
def settings(kafka_bootstrap_servers: str, names: Names) -> Settings:
    """The test process's settings: the session broker and the proof's registry topic."""
    return load_settings(
        kafka={"bootstrap_servers": kafka_bootstrap_servers},
        registry={"topic": names.registry},
    )


@pytest_asyncio.fixture
async def producer(settings: Settings) -> AsyncIterator[EventProducer]:
    """A started producer that registers the proofs' schemas in the proof's registry topic."""
    async with EventProducer(settings=settings, source="/proofs") as started:
        yield started


def app_environment(
    kafka_bootstrap_servers: str, names: Names, store: str, **extra: str
) -> dict[str, str]:
    """The environment of the proof's app processes (see the module docstring)."""
    return child_environment(
        EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS=kafka_bootstrap_servers,
        EVENTPLATFORM_REGISTRY__TOPIC=names.registry,
        EVENTPLATFORM_CONSUMER__GROUP_ID=names.group,
        EVENTPLATFORM_CONSUMER__SESSION_TIMEOUT_MS="6000",
        EVENTPLATFORM_CONSUMER__HEARTBEAT_INTERVAL_MS="1000",
        EVENTPLATFORM_CONSUMER__MAX_POLL_RECORDS="250",
        EVENTPLATFORM_IDEMPOTENCY__STORE=store,
        PROOF_TOPIC=names.topic,
        PROOF_OUTPUT_TOPIC=names.output,
        **extra,
    )


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """Folder of the app processes' logs."""
    folder = tmp_path / "logs"
    folder.mkdir()
    return folder


@pytest_asyncio.fixture
async def sqlite_effects(tmp_path: Path) -> AsyncIterator[EffectTable]:
    """An effect table in the SQLite file that is also the inbox store."""
    table = SqliteEffects(tmp_path / "inbox.db")
    await table.create()
    yield table
    await table.close()


@pytest_asyncio.fixture
async def postgres_effects(postgres_dsn: str) -> AsyncIterator[EffectTable]:
    """An effect table of its own in the PostgreSQL database that is also the inbox store."""
    table = PostgresEffects(postgres_dsn, f"effects_{uuid.uuid4().hex[:12]}")
    await table.create()
    yield table
    await table.close()
