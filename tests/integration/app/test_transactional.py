"""Transactional handlers: output and offsets in one Kafka transaction per poll (KIP-98)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from eventplatform.app import Context, EventApp
from eventplatform.errors import StoreNotTransactional
from eventplatform.producer import EventProducer, Outgoing
from eventplatform.registry import MemoryRegistry
from eventplatform.serde import AvroDeserializer
from eventplatform.settings import Settings
from tests.integration.app.events import InvoiceIssued, OrderPlaced
from tests.integration.app.helpers import eventually, read_all, running


async def test_transactional_output_is_seen_once_by_a_read_committed_reader(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Awaitable[str]],
    group: str,
    kafka_bootstrap_servers: str,
    kafka_admin: AIOKafkaAdminClient,
) -> None:
    source = await create_topic(unique_topic("orders"), partitions=2)
    sink = await create_topic(unique_topic("invoices"), partitions=2)
    count = 40
    app = EventApp(
        "invoicing", group_id=group, registry=registry, settings=settings, instance_id="i-1"
    )

    @app.handle(OrderPlaced, topic=source, transactional=True)
    async def invoice(event: OrderPlaced, ctx: Context) -> None:
        with pytest.raises(StoreNotTransactional):
            _ = ctx.transaction
        result = await ctx.publish(
            InvoiceIssued(order_id=event.order_id, amount=event.amount), topic=sink, key=ctx.key
        )
        assert result is None  # sent with the transaction, offset not known yet
        if event.amount % 7 == 0 and ctx.attempt == 1:
            raise RuntimeError("fails after publishing: the attempt's output must vanish")

    await producer.publish_batch(
        [
            Outgoing(OrderPlaced(order_id=f"o{i}", amount=i), key=f"c{i % 5}", topic=source)
            for i in range(count)
        ]
    )
    async with running(app):
        await eventually(lambda: app.stats.handled == count)
    assert app.transactional_id == f"{group}.i-1"

    outputs = await read_all(kafka_bootstrap_servers, sink, expected=count, to_end=True)
    deserializer = AvroDeserializer(registry)
    orders = Counter(
        [(await deserializer.deserialize(r.value, InvoiceIssued)).order_id for r in outputs]
    )
    assert orders == {f"o{i}": 1 for i in range(count)}
    # The offsets were committed in the transactions.
    committed = await kafka_admin.list_consumer_group_offsets(group)
    assert sum(meta.offset for tp, meta in committed.items() if tp.topic == source) == count
    assert {tp for tp in committed if tp.topic == source} <= {
        TopicPartition(source, 0),
        TopicPartition(source, 1),
    }


async def test_derived_events_get_the_same_ids_when_a_handler_runs_again(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    group: str,
    kafka_bootstrap_servers: str,
) -> None:
    source, sink = unique_topic("orders"), unique_topic("invoices")
    app = EventApp("rerun", group_id=group, registry=registry, settings=settings)

    @app.handle(OrderPlaced, topic=source)
    async def invoice(event: OrderPlaced, ctx: Context) -> None:
        await ctx.publish(InvoiceIssued(order_id=event.order_id), topic=sink)
        if ctx.attempt == 1:
            raise RuntimeError("published, then failed: the retry publishes the same event")

    await producer.publish(
        OrderPlaced(order_id="o1"),
        topic=source,
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    async with running(app):
        await eventually(lambda: app.stats.handled == 1)
    first, second = await read_all(kafka_bootstrap_servers, sink, expected=2)
    ids = [dict(r.headers)["ce_id"] for r in (first, second)]
    assert ids[0] == ids[1]  # the duplicate is recognisable downstream
    for record in (first, second):
        assert dict(record.headers)["traceparent"] == (
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        )
