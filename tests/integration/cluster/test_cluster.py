"""The three-broker cluster: replication defaults, failover of a leader, quorum loss.

One cluster serves the session (``kafka_cluster``); a test that stops or kills a broker gets
it back before the next test (the fixture restarts any node left down).
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer
from typer.testing import CliRunner

from eventplatform.cli import app as cli
from eventplatform.connectors.runtime.compacted import CompactedTable
from eventplatform.devkafka.local import LocalCluster
from eventplatform.errors import PublishTimeout
from eventplatform.producer import EventProducer
from eventplatform.registry.kafkalog import KafkaLogRegistry
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.settings import ProducerSettings, Settings
from tests.integration.cluster.conftest import (
    admin_client,
    create_replicated,
    eventually,
    order,
    read_values,
    replication_of,
)


def java_hash(text: str) -> int:
    """Java's ``String.hashCode`` (Kafka places groups and transactional ids with it)."""
    data = text.encode("utf-16-be")
    value = 0
    for unit in struct.unpack(f">{len(data) // 2}H", data):  # UTF-16 code units
        value = (31 * value + unit) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def coordinator_partition(key: str, partitions: int = 10) -> int:
    """Kafka's ``Utils.abs(key.hashCode()) % partitions`` (``abs``, 0 for ``MIN_VALUE``)."""
    code = java_hash(key)
    return (0 if code == -(1 << 31) else abs(code)) % partitions


async def test_three_brokers_and_topics_eventplatform_creates_get_rf3_min_isr2(
    kafka_cluster: LocalCluster, unique_topic: Callable[[str], str]
) -> None:
    kafka = kafka_cluster.kafka_settings()
    admin = admin_client(kafka)
    await admin.start()
    try:
        brokers = {b["node_id"] for b in (await admin.describe_cluster())["brokers"]}
    finally:
        await admin.close()
    assert brokers == {1, 2, 3}
    settings = Settings(kafka=kafka)

    registry_topic = unique_topic("schemas")
    async with KafkaLogRegistry(settings=settings, topic=registry_topic):
        pass
    table_topic = unique_topic("offsets")
    table = CompactedTable(table_topic, settings=settings)
    await table.start()
    await table.close()
    cli_topic = unique_topic("cli")
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["topics", "create", cli_topic], env=kafka_cluster.env()
    )
    assert result.exit_code == 0, result.output
    assert "replication factor 3" in result.output

    for topic in (registry_topic, table_topic, cli_topic):
        assert await replication_of(kafka, topic) == (3, "2"), topic


async def test_acks_all_publishing_survives_sigkill_of_the_leader(
    kafka_cluster: LocalCluster, unique_topic: Callable[[str], str]
) -> None:
    kafka = kafka_cluster.kafka_settings()
    topic = unique_topic("failover")
    await create_replicated(kafka, topic)
    settings = Settings(kafka=kafka, producer=ProducerSettings(delivery_timeout=60))
    sent = 0
    async with (
        MemoryRegistry() as registry,
        EventProducer(settings=settings, registry=registry) as producer,
    ):
        for n in range(20):
            await producer.publish(order(n), topic=topic, key=f"k{n}")
            sent += 1
        leader = await kafka_cluster.leader(topic, 0)
        assert leader in (1, 2, 3)
        await asyncio.to_thread(kafka_cluster.kill, leader)
        assert not kafka_cluster.is_running(leader)
        started = time.monotonic()
        for n in range(20, 40):  # each waits for the new leader; none may fail
            await producer.publish(order(n), topic=topic, key=f"k{n}")
            sent += 1
        print(f"publishing across the leader's SIGKILL took {time.monotonic() - started:.1f}s")
        new_leader = await kafka_cluster.leader(topic, 0)
        assert new_leader not in (None, leader)
        await asyncio.to_thread(kafka_cluster.restart, leader)
        assert kafka_cluster.is_running(leader)
        await eventually(
            lambda: _isr_is(kafka_cluster, topic, {1, 2, 3}), within=60, what="ISR back to 3"
        )
        await producer.publish(order(40), topic=topic, key="k40")
        sent += 1
    values = await read_values(kafka, topic, sent)
    assert len(values) == sent == 41  # idempotent producer: nothing lost, nothing twice


async def _isr_is(cluster: LocalCluster, topic: str, nodes: set[int]) -> bool:
    return set(await cluster.in_sync_replicas(topic, 0)) == nodes


async def test_the_fixture_tells_leaders_and_coordinators(
    kafka_cluster: LocalCluster, unique_topic: Callable[[str], str]
) -> None:
    kafka = kafka_cluster.kafka_settings()
    group, txid = unique_topic("group"), unique_topic("txid")
    group_coordinator = await kafka_cluster.group_coordinator(group)
    txn_coordinator = await kafka_cluster.transaction_coordinator(txid)
    # Kafka places a group on the __consumer_offsets partition of its hash, and the
    # partition's leader coordinates it (likewise __transaction_state for transactions).
    assert group_coordinator == await kafka_cluster.leader(
        "__consumer_offsets", coordinator_partition(group)
    )
    assert txn_coordinator == await kafka_cluster.leader(
        "__transaction_state", coordinator_partition(txid)
    )
    # A consumer of that group finds the same coordinator.
    topic = unique_topic("coordinated")
    await create_replicated(kafka, topic)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka.bootstrap_servers, group_id=group)
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=500)
        assert consumer._coordinator.coordinator_id == group_coordinator
    finally:
        await consumer.stop()

    # Kill the reported leader of a partition: leadership moves to a live node.
    leader = await kafka_cluster.leader(topic, 0)
    assert leader is not None
    await asyncio.to_thread(kafka_cluster.kill, leader)

    async def moved() -> int | None:
        now = await kafka_cluster.leader(topic, 0)
        return now if now not in (None, leader) else None

    new_leader = await eventually(moved, within=60, what="a new leader")
    assert kafka_cluster.is_running(new_leader)
    if group_coordinator == leader:
        assert await kafka_cluster.group_coordinator(group) != leader


async def test_with_two_brokers_down_publish_fails_retriably_and_recovers(
    kafka_cluster: LocalCluster, unique_topic: Callable[[str], str]
) -> None:
    kafka = kafka_cluster.kafka_settings()
    topic = unique_topic("quorum")
    await create_replicated(kafka, topic)
    settings = Settings(kafka=kafka, producer=ProducerSettings(delivery_timeout=5))
    acknowledged = 0
    async with (
        MemoryRegistry() as registry,
        EventProducer(settings=settings, registry=registry) as producer,
    ):
        await producer.publish(order(0), topic=topic, key="k")
        acknowledged += 1
        leader = await kafka_cluster.leader(topic, 0)
        followers = [n for n in kafka_cluster.node_ids if n != leader]
        for node in followers:
            await asyncio.to_thread(kafka_cluster.kill, node)
        # acks=all with min.insync.replicas=2 and one broker of three left: nothing is
        # acknowledged. (Two of three combined nodes down is also a lost controller quorum,
        # so the ISR cannot shrink to 1 and the broker times the request out rather than
        # answering NOT_ENOUGH_REPLICAS; both are retriable, and both end as PublishTimeout.)
        with pytest.raises(PublishTimeout) as failed:
            await producer.publish(order(1), topic=topic, key="k")
        assert failed.value.retriable
        assert topic in str(failed.value)
        for node in followers:
            await asyncio.to_thread(kafka_cluster.restart, node)

        async def published() -> bool:
            await producer.publish(order(2), topic=topic, key="k")
            return True

        await eventually(published, within=90, what="publishing after the brokers returned")
        acknowledged += 1
    values = await read_values(kafka, topic, acknowledged + 1)
    # Every acknowledged event is there; the timed-out one may be too (it was not refused,
    # only not acknowledged in time), never twice.
    assert acknowledged <= len(values) <= acknowledged + 1
