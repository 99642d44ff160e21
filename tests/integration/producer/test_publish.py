"""EventProducer against the real broker: headers, batches, transactions, failures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from eventplatform.cloudevents import EventMetadata
from eventplatform.demo.events import Currency, LineItem, OrderPlaced
from eventplatform.errors import (
    ConfigurationError,
    RecordTooLarge,
    ResourceStateError,
    SerializationError,
)
from eventplatform.producer import EventProducer, Outgoing
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.serde import AvroDeserializer
from eventplatform.settings import KafkaSettings, ProducerSettings, Settings

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def order(n: int = 0, customer: str = "c-1") -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid4(),
        customer_id=customer,
        items=[LineItem(sku=f"SKU-{n}", quantity=1 + n % 3, unit_price=Decimal("2.50"))],
        total=Decimal("2.50") * (1 + n % 3),
        currency=Currency.EUR,
        placed_at=datetime(2026, 5, 1, 12, 0, tzinfo=UTC),
    )


@pytest.fixture
def settings(kafka_bootstrap_servers: str) -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap_servers),
        producer=ProducerSettings(source="/tests/orders", delivery_timeout=20),
    )


@pytest.fixture
async def registry() -> AsyncIterator[MemoryRegistry]:
    async with MemoryRegistry() as reg:
        yield reg


async def read_all(
    servers: str, topic: str, expected: int, **options: object
) -> list[ConsumerRecord]:  # type: ignore[type-arg]
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=servers, auto_offset_reset="earliest", **options
    )
    await consumer.start()
    records: list[ConsumerRecord] = []  # type: ignore[type-arg]
    try:
        for _ in range(40):
            batch = await consumer.getmany(timeout_ms=500)
            records += [r for rs in batch.values() for r in rs]
            if len(records) >= expected:
                break
    finally:
        await consumer.stop()
    return records


async def test_publish_is_durable_with_cloudevents_headers(
    settings: Settings, registry: MemoryRegistry, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("orders")
    event = order()
    async with EventProducer(settings=settings, registry=registry) as producer:
        result = await producer.publish(
            event,
            topic=topic,
            key="c-1",
            idempotency_key="order-1",
            subject="order-1",
            traceparent=TRACEPARENT,
            headers=[("x-tenant", b"acme")],
        )
    assert (result.topic, result.offset) == (topic, 0)
    (record,) = await read_all(settings.kafka.bootstrap_servers or "", topic, 1)
    assert record.key == b"c-1"
    meta = EventMetadata.from_headers(record.headers)
    assert meta.id == result.event_id
    assert meta.type == "com.example.orders.OrderPlaced"
    assert meta.source == "/tests/orders"
    assert meta.idempotency_key == "order-1"
    assert meta.subject == "order-1"
    assert meta.traceparent == TRACEPARENT
    assert ("x-tenant", b"acme") in list(record.headers)
    assert dict(record.headers)["content-type"] == b"application/avro"
    decoded = await AvroDeserializer(registry).deserialize(record.value, OrderPlaced)
    assert decoded == event


async def test_batch_keeps_order_per_key_and_reports_offsets(
    settings: Settings,
    registry: MemoryRegistry,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Awaitable[str]],
) -> None:
    topic = await create_topic(unique_topic("batch"), partitions=3)
    events = [Outgoing(order(i, f"c-{i % 7}"), key=f"c-{i % 7}") for i in range(2000)]
    async with EventProducer(settings=settings, registry=registry) as producer:
        results = await producer.publish_batch(events, topic=topic)
    assert len(results) == 2000
    assert len({(r.partition, r.offset) for r in results}) == 2000
    records = await read_all(settings.kafka.bootstrap_servers or "", topic, 2000)
    assert len(records) == 2000
    by_position = {(r.partition, r.offset): r for r in records}
    deserializer = AvroDeserializer(registry)
    for item, result in zip(events[:50], results[:50], strict=True):
        record = by_position[(result.partition, result.offset)]
        assert record.key == item.key.encode()  # type: ignore[union-attr]
        assert await deserializer.deserialize(record.value, OrderPlaced) == item.event
    for key in {f"c-{i}" for i in range(7)}:
        mine = sorted(
            (r for r in records if r.key == key.encode()), key=lambda r: (r.partition, r.offset)
        )
        assert len({r.partition for r in mine}) == 1
        skus = [(await deserializer.deserialize(r.value, OrderPlaced)).items[0].sku for r in mine]
        expected = [e.event.items[0].sku for e in events if e.key == key]  # type: ignore[attr-defined]
        assert skus == expected


async def test_batch_headers_name_each_events_id_and_keep_given_ones(
    settings: Settings,
    registry: MemoryRegistry,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Awaitable[str]],
) -> None:
    topic = await create_topic(unique_topic("batch-ids"), partitions=2)
    given = Outgoing(
        order(1), key="c-9", event_id="given-id", idempotency_key="order-1:placed", subject="s"
    )
    items: list[OrderPlaced | Outgoing] = [
        order(0),
        given,
        Outgoing(order(2), key="c-2", headers=[("x-tenant", b"acme")]),
    ]
    async with EventProducer(settings=settings, registry=registry) as producer:
        results = await producer.publish_batch(items, topic=topic)
    records = await read_all(settings.kafka.bootstrap_servers or "", topic, 3)
    by_position = {(r.partition, r.offset): r for r in records}
    metas = [
        EventMetadata.from_headers(by_position[(r.partition, r.offset)].headers) for r in results
    ]
    assert [m.id for m in metas] == [r.event_id for r in results]
    assert [m.idempotency_key for m in metas] == [r.idempotency_key for r in results]
    assert metas[1].id == "given-id"
    assert (metas[1].idempotency_key, metas[1].subject) == ("order-1:placed", "s")
    assert metas[0].id != metas[2].id
    assert metas[0].idempotency_key == metas[0].id
    assert {m.source for m in metas} == {"/tests/orders"}
    assert ("x-tenant", b"acme") in list(
        by_position[(results[2].partition, results[2].offset)].headers
    )


async def test_batch_with_a_bad_event_writes_nothing(
    settings: Settings, registry: MemoryRegistry, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("batch-bad")
    bad = order(5).model_copy(update={"total": Decimal("1e40")})  # beyond the decimal's precision
    items = [Outgoing(order(n), key=f"c-{n}") for n in range(500)]
    items.insert(250, Outgoing(bad, key="c-bad"))
    async with EventProducer(settings=settings, registry=registry) as producer:
        with pytest.raises(SerializationError, match="precision"):
            await producer.publish_batch(items, topic=topic)
        (result,) = await producer.publish_batch([order(9)], topic=topic)
    # The marker event published after the failure is the topic's first record.
    assert result.offset == 0


async def test_transactional_publish_commit_and_abort(
    settings: Settings, registry: MemoryRegistry, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("txn")
    async with EventProducer(
        settings=settings, registry=registry, transactional_id=unique_topic("tx")
    ) as producer:
        async with producer.transaction():
            await producer.publish(order(1), topic=topic)
        aborted = False
        try:
            async with producer.transaction():
                await producer.publish_batch([order(2), order(3)], topic=topic)
                raise RuntimeError("abort me")
        except RuntimeError:
            aborted = True
        assert aborted
        async with producer.transaction():
            await producer.publish(order(4), topic=topic)
    records = await read_all(
        settings.kafka.bootstrap_servers or "", topic, 2, isolation_level="read_committed"
    )
    deserializer = AvroDeserializer(registry)
    skus = [(await deserializer.deserialize(r.value, OrderPlaced)).items[0].sku for r in records]
    assert skus == ["SKU-1", "SKU-4"]


async def test_misuse_is_reported(settings: Settings, registry: MemoryRegistry) -> None:
    producer = EventProducer(settings=settings, registry=registry)
    with pytest.raises(ResourceStateError, match="use it inside `async with`"):
        await producer.publish(order())
    async with producer:
        with pytest.raises(ConfigurationError, match=r"no topic for com\.example\.orders"):
            await producer.publish(order())
        with pytest.raises(ConfigurationError, match="transactional_id"):
            async with producer.transaction():
                pass
    with pytest.raises(ResourceStateError, match="closed"):
        await producer.publish(order(), topic="x")


async def test_default_registry_is_the_kafka_log(
    settings: Settings, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("default-registry")
    registry_topic = unique_topic("schemas")
    settings = settings.model_copy(
        update={"registry": settings.registry.model_copy(update={"topic": registry_topic})}
    )
    async with EventProducer(settings=settings) as producer:
        await producer.publish(order(), topic=topic)
        assert await producer.registry.list_subjects() == [f"{topic}-value"]


async def test_a_record_beyond_max_request_size_fails_the_batch_before_anything_is_sent(
    kafka_bootstrap_servers: str, registry: MemoryRegistry, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("too-large")
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap_servers),
        producer=ProducerSettings(source="/tests/orders", max_request_size=2048),
    )
    large = order(1).model_copy(update={"note": "x" * 4000})
    items = [Outgoing(order(n), key=f"c-{n}") for n in range(300)]
    items.insert(150, Outgoing(large, key="c-large"))
    async with EventProducer(settings=settings, registry=registry) as producer:
        with pytest.raises(RecordTooLarge, match=f"exceeds max_request_size .*{topic}"):
            await producer.publish_batch(items, topic=topic)
        with pytest.raises(RecordTooLarge):
            await producer.send_raw_batch(topic, [(b"k", b"v" * 5000, ())])
        (result,) = await producer.publish_batch([order(2)], topic=topic)
    assert result.offset == 0  # nothing of the failed calls was written
