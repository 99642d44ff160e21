"""EventProducer.publish's delivery deadline, enforced by one watcher task per producer.

The aiokafka client is replaced by a stand-in whose acknowledgements the test controls, so
that an ack that never comes takes milliseconds, not a broker outage. ``publish()`` goes
through the coalescer and the batch path, so the stand-in takes aiokafka batches
(``create_batch``/``send_batch``); each test publishes one event per batch by awaiting
each submission before the next.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import RecordMetadata, TopicPartition

from eventplatform.demo.events import Currency, LineItem, OrderPlaced
from eventplatform.errors import PublishTimeout
from eventplatform.producer import EventProducer
from eventplatform.producer.coalescer import Coalescer
from eventplatform.producer.producer import _State
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.serde import AvroSerializer
from eventplatform.settings import KafkaSettings, ProducerSettings, Settings

TIMEOUT = 0.2


class StandInClient:
    """Accepts batches for partition 0; acknowledges them only when the test says so."""

    def __init__(self) -> None:
        self.pending: list[asyncio.Future[RecordMetadata]] = []
        self.arrived = asyncio.Event()

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(1 << 16, 0)

    async def send_batch(
        self, builder: BatchBuilder, topic: str, *, partition: int
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        self.arrived.set()
        return future

    async def sends(self, count: int) -> None:
        """Wait until ``count`` records were sent."""
        while len(self.pending) < count:
            self.arrived.clear()
            await self.arrived.wait()

    def ack(self, index: int, offset: int) -> None:
        tp = TopicPartition("orders", 0)
        self.pending[index].set_result(RecordMetadata("orders", 0, tp, offset, 0, 0, 0))

    async def stop(self) -> None:
        return None


def order() -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid4(),
        customer_id="c-1",
        items=[LineItem(sku="SKU-1", quantity=1, unit_price=Decimal("2.50"))],
        total=Decimal("2.50"),
        currency=Currency.EUR,
        placed_at=datetime(2026, 5, 1, 12, 0, tzinfo=UTC),
    )


@pytest.fixture
async def producer() -> AsyncIterator[tuple[EventProducer, StandInClient]]:
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),
        producer=ProducerSettings(delivery_timeout=TIMEOUT),
    )
    async with MemoryRegistry() as registry:
        client = StandInClient()
        made = EventProducer(settings=settings, registry=registry)
        # Started by hand around the stand-in client (start() would dial the broker).
        made._client = client
        made._serializer = AvroSerializer(registry)
        made._state = _State.STARTED
        made._coalescer = Coalescer(made, max_in_flight=8)
        try:
            yield made, client
        finally:
            await made.close()


async def test_publish_without_ack_raises_publish_timeout_naming_the_topic(
    producer: tuple[EventProducer, StandInClient],
) -> None:
    made, _ = producer
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(PublishTimeout, match="'orders' was not acknowledged within") as caught:
        await made.publish(order(), topic="orders", event_id="e-1", idempotency_key="k-1")
    assert TIMEOUT <= loop.time() - started < TIMEOUT + 1.0
    assert caught.value.retriable
    # The timeout names what to retry with; the record itself may still be written.
    assert (caught.value.event_ids, caught.value.idempotency_keys) == (("e-1",), ("k-1",))
    assert "may have been written" in str(caught.value)


async def test_a_timeout_names_the_generated_event_id(
    producer: tuple[EventProducer, StandInClient],
) -> None:
    made, _ = producer
    with pytest.raises(PublishTimeout) as caught:
        await made.publish(order(), topic="orders")
    (event_id,) = caught.value.event_ids
    assert caught.value.idempotency_keys == (event_id,)
    assert event_id in str(caught.value)


async def test_acknowledged_publish_returns_its_offset_and_the_watcher_goes_idle(
    producer: tuple[EventProducer, StandInClient],
) -> None:
    made, client = producer
    publishing = asyncio.create_task(made.publish(order(), topic="orders", key="c-1"))
    await client.sends(1)
    client.ack(0, offset=41)
    result = await publishing
    assert (result.topic, result.partition, result.offset) == ("orders", 0, 41)
    for _ in range(50):  # the watcher ends once nothing is in flight
        if made._deadlines._task is None:
            break
        await asyncio.sleep(0.02)
    assert made._deadlines._task is None


async def test_only_late_publishes_time_out_when_many_are_in_flight(
    producer: tuple[EventProducer, StandInClient],
) -> None:
    made, client = producer
    calls = []
    for count in range(1, 4):  # one batch each, so that each can be acknowledged alone
        calls.append(asyncio.create_task(made.publish(order(), topic="orders")))
        await client.sends(count)
    client.ack(1, offset=7)
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(outcomes[0], PublishTimeout)
    assert not isinstance(outcomes[1], BaseException)
    assert outcomes[1].offset == 7
    assert isinstance(outcomes[2], PublishTimeout)


async def test_cancelling_the_caller_is_not_reported_as_a_timeout(
    producer: tuple[EventProducer, StandInClient],
) -> None:
    made, client = producer
    publishing = asyncio.create_task(made.publish(order(), topic="orders"))
    await client.sends(1)
    publishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await publishing


async def test_close_stops_the_watcher(producer: tuple[EventProducer, StandInClient]) -> None:
    made, client = producer
    publishing = asyncio.create_task(made.publish(order(), topic="orders"))
    await client.sends(1)
    assert made._deadlines._task is not None
    client.ack(0, offset=1)
    await publishing
    await made.close()
    assert made._deadlines._task is None
