"""The provisioned broker is a real Kafka with the features later layers rely on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition


async def drain(consumer: AIOKafkaConsumer, expected: int, rounds: int = 20) -> list[bytes]:
    values: list[bytes] = []
    for _ in range(rounds):
        batch = await consumer.getmany(timeout_ms=500)
        values += [m.value for records in batch.values() for m in records if m.value]
        if len(values) >= expected:
            break
    return values


async def test_produce_and_consume(
    kafka_bootstrap_servers: str,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Awaitable[str]],
) -> None:
    topic = await create_topic(unique_topic("plain"), partitions=3)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap_servers)
    await producer.start()
    try:
        for i in range(30):
            await producer.send(topic, f"v{i}".encode(), key=f"k{i % 5}".encode())
        await producer.flush()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        values = await drain(consumer, 30)
    finally:
        await consumer.stop()
    assert sorted(values) == sorted(f"v{i}".encode() for i in range(30))


async def test_idempotent_producer_acks_all(
    kafka_bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("idem")
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap_servers, enable_idempotence=True, acks="all"
    )
    await producer.start()
    try:
        metas = [await producer.send_and_wait(topic, b"x%d" % i) for i in range(10)]
    finally:
        await producer.stop()
    assert [m.offset for m in metas] == list(range(10))


async def test_transactions_commit_and_abort(
    kafka_bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("txn")
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap_servers, transactional_id=unique_topic("txid")
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topic, b"committed-1")
        await producer.begin_transaction()
        await producer.send(topic, b"aborted")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topic, b"committed-2")
    finally:
        await producer.stop()

    committed = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    uncommitted = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        isolation_level="read_uncommitted",
    )
    await committed.start()
    await uncommitted.start()
    try:
        assert await drain(committed, 2) == [b"committed-1", b"committed-2"]
        assert await drain(uncommitted, 3) == [b"committed-1", b"aborted", b"committed-2"]
    finally:
        await committed.stop()
        await uncommitted.stop()


async def test_consume_transform_produce_commits_offsets_in_the_transaction(
    kafka_bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    source, sink, group = unique_topic("in"), unique_topic("out"), unique_topic("group")
    plain = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap_servers)
    await plain.start()
    try:
        for i in range(5):
            await plain.send(source, b"%d" % i)
        await plain.flush()
    finally:
        await plain.stop()

    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap_servers, transactional_id=unique_topic("tx")
    )
    await consumer.start()
    await producer.start()
    try:
        records = await drain_records(consumer, 5)
        async with producer.transaction():
            for record in records:
                await producer.send(sink, record.value * 2)
            await producer.send_offsets_to_transaction(
                {TopicPartition(source, 0): records[-1].offset + 1}, group
            )
        # Commit markers are written after commit_transaction() returns (KIP-98), so the
        # offsets become visible to the group shortly after, not at once.
        committed = None
        for _ in range(40):
            committed = await consumer.committed(TopicPartition(source, 0))
            if committed == 5:
                break
            await asyncio.sleep(0.25)
        assert committed == 5
    finally:
        await producer.stop()
        await consumer.stop()


async def drain_records(consumer: AIOKafkaConsumer, expected: int) -> list:  # type: ignore[type-arg]
    out = []
    for _ in range(20):
        batch = await consumer.getmany(timeout_ms=500)
        out += [m for records in batch.values() for m in records]
        if len(out) >= expected:
            break
    return out


async def test_consumer_group_commit_resumes_after_restart(
    kafka_bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    topic, group = unique_topic("grp"), unique_topic("g")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap_servers)
    await producer.start()
    try:
        for i in range(6):
            await producer.send(topic, b"%d" % i)
        await producer.flush()
    finally:
        await producer.stop()

    def member() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap_servers,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    first = member()
    await first.start()
    try:
        records = await drain_records(first, 6)
        assert len(records) == 6
        tp = TopicPartition(topic, 0)
        await first.commit({tp: records[3].offset + 1})  # handled 0..3
    finally:
        await first.stop()

    second = member()
    await second.start()
    try:
        rest = await drain(second, 2)
    finally:
        await second.stop()
    assert rest == [b"4", b"5"]
