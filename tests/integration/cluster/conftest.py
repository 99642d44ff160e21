"""Helpers shared by the three-broker cluster tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar, cast
from uuid import uuid4

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import TopicPartition

from eventplatform.demo.events import Currency, LineItem, OrderPlaced
from eventplatform.settings import KafkaSettings
from tests.waiting import until

T = TypeVar("T")


def order(n: int) -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid4(),
        customer_id=f"c-{n}",
        items=[LineItem(sku=f"SKU-{n}", quantity=1, unit_price=Decimal("2.50"))],
        total=Decimal("2.50"),
        currency=Currency.EUR,
        placed_at=datetime(2026, 5, 1, 12, 0, tzinfo=UTC),
    )


async def eventually(
    check: Callable[[], Awaitable[T]], *, within: float, what: str, every: float = 0.25
) -> T:
    """Poll ``check`` until it returns something truthy, and return that; fail after
    ``within`` seconds. An exception counts as "not yet" (a node still electing)."""
    outcome: list[object] = [None]

    async def holds() -> bool:
        try:
            outcome[0] = await check()
        except Exception as exc:
            outcome[0] = exc
            return False
        return bool(outcome[0])

    await until(
        holds, within=within, what=what, interval=every, details=lambda: f"last: {outcome[0]!r}"
    )
    return cast(T, outcome[0])


def admin_client(kafka: KafkaSettings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=kafka.bootstrap_servers, **kafka.connection_options()
    )


async def create_replicated(kafka: KafkaSettings, topic: str, partitions: int = 1) -> None:
    """A topic as eventplatform would create it on this cluster (RF and min ISR derived)."""
    admin = admin_client(kafka)
    await admin.start()
    try:
        brokers = len((await admin.describe_cluster())["brokers"])
        replicas, min_isr = kafka.topic_replication(brokers)
        await admin.create_topics(
            [
                NewTopic(
                    topic, partitions, replicas, topic_configs={"min.insync.replicas": str(min_isr)}
                )
            ]
        )
    finally:
        await admin.close()


async def replication_of(kafka: KafkaSettings, topic: str) -> tuple[int, str]:
    """(replicas of partition 0, the topic's min.insync.replicas) as the cluster describes them."""
    admin = admin_client(kafka)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        replicas = len(described["partitions"][0]["replicas"])
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"min.insync.replicas": None})]
        )
        entries = response.to_object()["resources"][0]["config_entries"]
        value = next(
            e["config_value"] for e in entries if e["config_names"] == "min.insync.replicas"
        )
    finally:
        await admin.close()
    return replicas, value


async def read_values(
    kafka: KafkaSettings, topic: str, expected: int, **options: Any
) -> list[bytes]:
    """Every record value of ``topic`` once ``expected`` are there (or after 30 s)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        **(kafka.connection_options() | options),
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(values) < expected and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            values += [m.value for records in batch.values() for m in records if m.value]
    finally:
        await consumer.stop()
    return values


async def end_offset(kafka: KafkaSettings, topic: str) -> int:
    """The log end offset of partition 0 of ``topic``: how many records were ever written."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers, **kafka.connection_options()
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()
