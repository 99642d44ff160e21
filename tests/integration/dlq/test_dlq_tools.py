"""``eventplatform dlq``: a poison event is dead-lettered, listed, shown, and replayed once the
handler is fixed; it is then handled exactly once, however often it is replayed.

Real parts throughout: the test broker, a Kafka-log schema registry on its own topic, an
EventApp with a SQLite idempotency store, and the CLI as a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition

from eventplatform.app import Context, EventApp
from eventplatform.producer import EventProducer, PublishResult
from eventplatform.registry.kafkalog import KafkaLogRegistry
from eventplatform.settings import Settings, load_settings
from tests.integration.app.events import OrderPlaced
from tests.integration.app.helpers import eventually, running

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[3]


class PoisonError(Exception):
    """What the broken handler raises; not retriable, so dead-lettered at once."""

    retriable: ClassVar[bool] = False


@pytest.fixture
def registry_topic() -> str:
    return f"_schemas-dlq-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def settings(kafka_bootstrap_servers: str, registry_topic: str, tmp_path: Path) -> Settings:
    return load_settings(
        kafka={"bootstrap_servers": kafka_bootstrap_servers},
        registry={"topic": registry_topic},
        consumer={
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 1000,
            "retry": {"max_attempts": 2, "initial_backoff": 0.01, "max_backoff": 0.05},
        },
        producer={"linger_ms": 1},
        idempotency={"store": f"sqlite:///{tmp_path / 'keys.db'}"},
    )


@pytest_asyncio.fixture
async def registry(settings: Settings, registry_topic: str) -> AsyncIterator[KafkaLogRegistry]:
    async with KafkaLogRegistry(topic=registry_topic, settings=settings) as started:
        yield started


def cli(settings: Settings, registry_topic: str, *args: str) -> subprocess.CompletedProcess[str]:
    assert settings.kafka.bootstrap_servers is not None
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EVENTPLATFORM_")},
        "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "EVENTPLATFORM_REGISTRY__TOPIC": registry_topic,
        "PYTHONPATH": str(REPO),
        "COLUMNS": "200",
    }
    result = subprocess.run(
        [sys.executable, "-m", "eventplatform", "dlq", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


async def end_offset(servers: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=servers)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


async def test_poison_is_dead_lettered_listed_shown_and_replayed_once(
    settings: Settings,
    registry: KafkaLogRegistry,
    registry_topic: str,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Awaitable[str]],
    kafka_bootstrap_servers: str,
) -> None:
    topic = await create_topic(unique_topic("orders"), partitions=1)
    dlq = await create_topic(f"{topic}.dlq", partitions=1)
    group = f"dlq-tools-{uuid.uuid4().hex[:8]}"
    effects: Counter[str] = Counter()
    fixed = False

    def app() -> EventApp:
        made = EventApp("dlq-tools", group_id=group, registry=registry, settings=settings)

        @made.handle(OrderPlaced, topic=topic)
        async def on_order(event: OrderPlaced, ctx: Context) -> None:
            if event.order_id.startswith("poison") and not fixed:
                raise PoisonError(f"cannot take {event.order_id}")
            effects[event.order_id] += 1

        return made

    published: dict[str, PublishResult] = {}
    async with EventProducer(registry=registry, settings=settings, source="/tests") as producer:
        for order_id in ("ok-1", "poison-1", "ok-2", "poison-2"):
            event = OrderPlaced(order_id=order_id, amount=7)
            published[order_id] = await producer.publish(event, topic=topic, key=order_id)

    first = app()
    async with running(first):
        await eventually(
            lambda: first.stats.handled == 2 and first.stats.dead_lettered == 2,
            within=60,
            what="two handled, two dead-lettered",
        )
    assert effects == {"ok-1": 1, "ok-2": 1}

    # list: both letters, with origin and reason, as JSON lines and as a table.
    listed = await asyncio.to_thread(cli, settings, registry_topic, "list", dlq, "--json")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [row["position"] for row in rows] == ["0:0", "0:1"]
    assert [row["origin"] for row in rows] == [f"{topic}/0@1", f"{topic}/0@3"]
    assert [row["event_id"] for row in rows] == [
        published["poison-1"].event_id,
        published["poison-2"].event_id,
    ]
    assert all(row["error_class"].endswith(".PoisonError") for row in rows)
    assert rows[0]["reason"] == "PoisonError: cannot take poison-1"
    table = await asyncio.to_thread(cli, settings, registry_topic, "list", dlq)
    assert "PoisonError: cannot take poison-2" in table.stdout
    assert "0:1" in table.stdout
    only = await asyncio.to_thread(cli, settings, registry_topic, "list", dlq, "--key", "poison-2")
    assert "poison-1" not in only.stdout
    assert "poison-2" in only.stdout

    # show: one letter, decoded through the registry.
    shown = await asyncio.to_thread(cli, settings, registry_topic, "show", dlq, "0:0")
    document: dict[str, Any] = json.loads(shown.stdout)
    assert document["value"] == {"order_id": "poison-1", "amount": 7}
    assert isinstance(document["schema_id"], int)
    assert document["event_id"] == published["poison-1"].event_id
    assert document["origin"] == {"topic": topic, "partition": 0, "offset": 1}
    assert document["error"]["attempts"] == 1
    assert "PoisonError" in document["stacktrace"]
    assert "__connect.errors.topic" not in document["headers"]

    # --dry-run writes nothing; an error class nobody raised selects nothing.
    dry = await asyncio.to_thread(cli, settings, registry_topic, "replay", dlq, "--dry-run")
    assert f"would replay 2 dead letter(s) of {dlq} to {topic} (2)" in " ".join(dry.stdout.split())
    none = await asyncio.to_thread(
        cli, settings, registry_topic, "replay", dlq, "--error", "KeyError", "--dry-run"
    )
    assert "would replay 0" in none.stdout
    assert await end_offset(kafka_bootstrap_servers, topic) == 4

    # Fix the handler, replay one letter (by offset): it is handled, once.
    fixed = True
    one = await asyncio.to_thread(cli, settings, registry_topic, "replay", dlq, "--offsets", "0")
    assert f"replayed 1 dead letter(s) of {dlq} to {topic} (1)" in " ".join(one.stdout.split())
    second = app()
    async with running(second):
        await eventually(lambda: second.stats.handled == 1, within=60, what="the replayed one")
    assert effects == {"ok-1": 1, "ok-2": 1, "poison-1": 1}

    # Replay everything, twice: poison-2 is handled once, poison-1 is not handled again.
    for _ in range(2):
        await asyncio.to_thread(cli, settings, registry_topic, "replay", dlq)
    assert await end_offset(kafka_bootstrap_servers, topic) == 4 + 1 + 2 + 2
    third = app()
    async with running(third):
        await eventually(
            lambda: third.stats.handled + third.stats.skipped_duplicates == 4,
            within=60,
            what="four replayed records processed",
        )
    assert third.stats.handled == 1
    assert third.stats.skipped_duplicates == 3
    assert effects == {"ok-1": 1, "ok-2": 1, "poison-1": 1, "poison-2": 1}

    # The replayed records are the events as published: same id, same idempotency key.
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap_servers)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 4)
        batch = await consumer.getmany(tp, timeout_ms=10_000)
    finally:
        await consumer.stop()
    replayed = [dict(record.headers or ()) for record in batch.get(tp, [])]
    assert replayed, "no replayed records read back"
    assert replayed[0]["ce_id"].decode() == published["poison-1"].event_id
    assert not any(name.startswith("__connect.errors.") for headers in replayed for name in headers)


async def test_share_group_dead_letters_are_listed_and_those_without_payload_skipped(
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Awaitable[str]],
    kafka_bootstrap_servers: str,
) -> None:
    from eventplatform.dlq import DeadLetterReader, Dialect, Selection, replay

    origin = await create_topic(unique_topic("work"), partitions=1)
    dlq = await create_topic(f"{origin}.dlq", partitions=2)
    settings = load_settings(kafka={"bootstrap_servers": kafka_bootstrap_servers})

    def share_headers(offset: int) -> list[tuple[str, bytes]]:
        # As a Kafka 4.4 broker writes them for a share group (KIP-1191).
        return [
            ("ce_id", f"evt-{offset}".encode()),
            ("__dlq.errors.topic", origin.encode()),
            ("__dlq.errors.partition", b"0"),
            ("__dlq.errors.offset", str(offset).encode()),
            ("__dlq.errors.group", b"workers"),
            ("__dlq.errors.delivery.count", b"5"),
            ("__dlq.errors.message", b"delivery count limit reached"),
        ]

    async with EventProducer(settings=settings, registry=_unused_registry()) as producer:
        await producer.send_raw_batch(
            dlq, [(b"k", b"payload", share_headers(10)), (None, None, share_headers(11))]
        )

    options = {"bootstrap_servers": kafka_bootstrap_servers}
    async with DeadLetterReader(dlq, options=options) as reader:
        letters = [letter async for letter in reader.scan()]
        assert len(letters) == 2
        assert {letter.dialect for letter in letters} == {Dialect.SHARE_GROUP}
        assert {letter.origin_offset for letter in letters} == {10, 11}
        assert {letter.attempts for letter in letters} == {5}
        assert letters[0].reason == "delivery count limit reached"
        async with EventProducer(settings=settings, registry=_unused_registry()) as producer:
            report = await replay(reader.scan(Selection()), producer=producer)
    assert [letter.origin_offset for letter in report.replayed] == [10]
    assert [s.letter.origin_offset for s in report.skipped] == [11]
    assert "copy.record.enable" in report.skipped[0].reason
    assert await end_offset(kafka_bootstrap_servers, origin) == 1


def _unused_registry() -> Any:
    from eventplatform.registry import MemoryRegistry

    return MemoryRegistry()  # raw records need no schema; this keeps the producer off Kafka's
