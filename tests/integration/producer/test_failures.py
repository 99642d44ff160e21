"""Failures against the real broker: one error per failure on every publish path (issue 12),
a bad event blamed on its own call, and a timeout that is retried without a second effect
(issue 10, item 9)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from eventplatform.app import Context, EventApp
from eventplatform.cloudevents import EventMetadata
from eventplatform.demo.events import Currency, LineItem, OrderPlaced
from eventplatform.errors import (
    ProducerFenced,
    PublishTimeout,
    RecordTooLarge,
    SerializationError,
    UnknownTopic,
)
from eventplatform.idempotency import MemoryStore
from eventplatform.producer import EventProducer, PublishResult
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.serde import AvroSerializer
from eventplatform.settings import KafkaSettings, ProducerSettings, Settings
from tests.integration.app.helpers import eventually, read_all, running

#: No topic can have this name (a space and "!"), so none exists even on a broker that
#: creates topics on first use, as the test brokers do (auto.create.topics.enable).
MISSING = "no topic may be named this!"


def order(n: int = 0) -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid4(),
        customer_id=f"c-{n}",
        items=[LineItem(sku=f"SKU-{n}", quantity=1, unit_price=Decimal("2.50"))],
        total=Decimal("2.50"),
        currency=Currency.EUR,
        placed_at=datetime(2026, 5, 1, 12, 0, tzinfo=UTC),
    )


def settings_for(servers: str, **producer: object) -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=servers),
        producer=ProducerSettings.model_validate({"source": "/tests/orders", **producer}),
    )


@pytest.fixture
async def registry() -> AsyncIterator[MemoryRegistry]:
    async with MemoryRegistry() as reg:
        yield reg


async def raw_value(registry: MemoryRegistry, topic: str) -> bytes:
    return await AvroSerializer(registry).serialize(order(), topic)


async def test_a_missing_topic_is_the_same_error_on_every_publish_path(
    kafka_bootstrap_servers: str, registry: MemoryRegistry, unique_topic: Callable[[str], str]
) -> None:
    # The lookup of a topic's partitions gives up after aiokafka's request timeout, 0.8 of
    # the delivery timeout: 1.6 s per path here.
    settings = settings_for(kafka_bootstrap_servers, delivery_timeout=2.0)
    value = await raw_value(registry, unique_topic("schema"))
    raised: dict[str, BaseException] = {}

    async def attempt(path: str, call: Awaitable[object]) -> None:
        with pytest.raises(UnknownTopic) as caught:
            await call
        raised[path] = caught.value

    async with EventProducer(settings=settings, registry=registry) as producer:
        await attempt("publish", producer.publish(order(), topic=MISSING))
        await attempt("publish_batch", producer.publish_batch([order()], topic=MISSING))
        await attempt("send_raw_batch", producer.send_raw_batch(MISSING, [(b"k", value, [])]))
        await attempt("send_raw", producer.send_raw(MISSING, value))
    async with EventProducer(
        settings=settings, registry=registry, transactional_id=unique_topic("tx")
    ) as transactional:
        with pytest.raises(UnknownTopic) as caught:
            async with transactional.transaction():
                await transactional.publish(order(), topic=MISSING)
        raised["transactional publish"] = caught.value

    assert {type(error) for error in raised.values()} == {UnknownTopic}
    for path, error in raised.items():
        assert MISSING in str(error), path
        assert error.retriable, path


async def test_a_fenced_transaction_raises_producer_fenced(
    kafka_bootstrap_servers: str,
    registry: MemoryRegistry,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Awaitable[str]],
) -> None:
    topic = await create_topic(unique_topic("fenced"))
    settings = settings_for(kafka_bootstrap_servers, delivery_timeout=10.0)
    txn_id = unique_topic("tx")
    # The second instance starts with the same transactional id after the first and bumps
    # the epoch (InitProducerId, KIP-98): the first is fenced.
    async with (
        EventProducer(settings=settings, registry=registry, transactional_id=txn_id) as old,
        EventProducer(settings=settings, registry=registry, transactional_id=txn_id) as new,
    ):
        with pytest.raises(ProducerFenced, match=txn_id):
            async with old.transaction():
                await old.publish(order(1), topic=topic)
        async with new.transaction():
            await new.publish(order(2), topic=topic)
    records = await read_all(kafka_bootstrap_servers, topic, expected=1)
    assert len(records) == 1  # only the new instance's transaction committed


async def test_a_bad_event_among_concurrent_publishes_fails_only_its_own_call(
    kafka_bootstrap_servers: str,
    registry: MemoryRegistry,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Awaitable[str]],
) -> None:
    topic = await create_topic(unique_topic("blame"), partitions=3)
    settings = settings_for(kafka_bootstrap_servers, max_request_size=2048)
    too_large = order(1).model_copy(update={"note": "x" * 4000})
    not_encodable = order(2).model_copy(update={"total": Decimal("1e40")})
    events = [order(n) for n in range(10)]
    events[3], events[7] = too_large, not_encodable
    async with EventProducer(settings=settings, registry=registry) as producer:
        await producer.publish(order(99), topic=topic)  # the schema, registered beforehand
        outcomes = await asyncio.gather(
            *(producer.publish(e, topic=topic, key=e.customer_id) for e in events),
            return_exceptions=True,
        )
        # publish() alone refuses a record beyond max_request_size too, as the batch paths do.
        with pytest.raises(RecordTooLarge, match=f"exceeds max_request_size .*{topic}"):
            await producer.publish(too_large, topic=topic)
    assert isinstance(outcomes[3], RecordTooLarge)
    assert isinstance(outcomes[7], SerializationError)
    published = [o for o in outcomes if isinstance(o, PublishResult)]
    assert len(published) == 8
    records = await read_all(kafka_bootstrap_servers, topic, expected=9)
    assert len(records) == 9  # the 8 and the schema's first event, nothing of the bad two
    written = {EventMetadata.from_headers(r.headers).id for r in records}
    assert {r.event_id for r in published} <= written


async def test_a_timed_out_publish_may_be_written_and_its_retry_with_the_same_ids_has_one_effect(
    kafka_bootstrap_servers: str,
    registry: MemoryRegistry,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Awaitable[str]],
) -> None:
    topic = await create_topic(unique_topic("retry"))
    settings = settings_for(kafka_bootstrap_servers)
    event = order(1)
    # A deadline that passes before any broker can answer, while aiokafka's own requests
    # keep their usual timeout: the call times out and its record is written all the same,
    # as when a broker dies after appending.
    hasty = settings_for(kafka_bootstrap_servers, delivery_timeout=1e-6)
    async with EventProducer(
        settings=hasty, registry=registry, client_options={"request_timeout_ms": 30_000}
    ) as producer:
        with pytest.raises(PublishTimeout, match="may have been written") as caught:
            await producer.publish(event, topic=topic, key="c-1")
    (event_id,) = caught.value.event_ids
    (idempotency_key,) = caught.value.idempotency_keys
    (landed,) = await read_all(kafka_bootstrap_servers, topic, expected=1)
    assert EventMetadata.from_headers(landed.headers).id == event_id

    # The retry the docs prescribe: the same event, the same ids.
    async with EventProducer(settings=settings, registry=registry) as producer:
        await producer.publish(
            event, topic=topic, key="c-1", event_id=event_id, idempotency_key=idempotency_key
        )
    records = await read_all(kafka_bootstrap_servers, topic, expected=2)
    assert [EventMetadata.from_headers(r.headers).id for r in records] == [event_id] * 2

    effects: Counter[str] = Counter()
    app = EventApp(
        "retry",
        group_id=unique_topic("group"),
        registry=registry,
        store=MemoryStore(),
        settings=settings,
    )

    @app.handle(OrderPlaced, topic=topic)
    async def handle(placed: OrderPlaced, ctx: Context) -> None:
        effects[ctx.idempotency_key] += 1

    async with running(app):
        await eventually(
            lambda: app.stats.handled + app.stats.skipped_duplicates == 2,
            what="both copies consumed",
        )
    assert effects == {idempotency_key: 1}
    assert app.stats.skipped_duplicates == 1
