"""Poison records go to the dead-letter topic at once; the partition keeps flowing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from eventplatform.app import Context, EventApp
from eventplatform.cloudevents import EventMetadata
from eventplatform.producer import EventProducer, Outgoing
from eventplatform.registry import MemoryRegistry
from eventplatform.serde import AvroSerializer, SubjectNameStrategy, frame_header
from eventplatform.settings import Settings
from tests.integration.app.events import OrderPlaced, Payment
from tests.integration.app.helpers import eventually, headers_of, read_all, running


async def test_undecodable_records_are_dead_lettered_while_the_rest_is_handled(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Awaitable[str]],
    group: str,
    kafka_bootstrap_servers: str,
) -> None:
    topic = await create_topic(unique_topic("orders"), partitions=1)
    handled: list[str] = []
    app = EventApp("poison", group_id=group, registry=registry, settings=settings)

    @app.handle(OrderPlaced, topic=topic)
    async def on_order(event: OrderPlaced, ctx: Context) -> None:
        handled.append(event.order_id)

    @app.handle(Payment, topic=topic)
    async def on_payment(event: Payment, ctx: Context) -> None:
        handled.append(event.payment_id)

    good_headers = EventMetadata.new(
        source="/tests", type="com.example.orders.OrderPlaced"
    ).to_headers()
    await producer.publish(OrderPlaced(order_id="before"), topic=topic, key="k")
    # Not Confluent-framed at all.
    await producer.send_raw(topic, b"\xffgarbage", key=b"k", headers=good_headers)
    # Framed, but with a schema id the registry never issued.
    await producer.send_raw(topic, frame_header(987654) + b"\x02a", key=b"k", headers=good_headers)
    # Valid Avro, malformed CloudEvents headers: a ce_time without offset. (Records with no
    # ce_* header at all are handled: see test_confluent_records.py.)
    serializer = AvroSerializer(registry, strategy=SubjectNameStrategy.TOPIC_RECORD)
    framed = await serializer.serialize(OrderPlaced(order_id="bad-headers"), topic)
    naive = [(n, b"2026-01-02T03:04:05" if n == "ce_time" else v) for n, v in good_headers]
    await producer.send_raw(topic, framed, key=b"k", headers=naive)
    # Valid Avro that fails the class's validation (amount must be >= 0).
    await producer.publish(Payment.model_construct(payment_id="neg", amount=-5), topic=topic)
    await producer.publish_batch(
        [Outgoing(OrderPlaced(order_id=f"after{i}"), topic=topic, key="k") for i in range(3)]
    )

    async with running(app):
        await eventually(lambda: app.stats.dead_lettered == 4 and app.stats.handled == 4)

    assert handled == ["before", "after0", "after1", "after2"]
    letters = await read_all(kafka_bootstrap_servers, f"{topic}.dlq", expected=4)
    by_class = {
        headers_of(r)["__connect.errors.exception.class.name"]: headers_of(r) for r in letters
    }
    assert set(by_class) == {
        "eventplatform.errors.NotWireFormat",
        "eventplatform.errors.UnknownSchemaId",
        "eventplatform.errors.InvalidEventHeaders",
        "eventplatform.errors.DeserializationError",
    }
    assert by_class["eventplatform.errors.NotWireFormat"]["__connect.errors.offset"] == "1"
    assert by_class["eventplatform.errors.UnknownSchemaId"]["__connect.errors.offset"] == "2"
    bad_time = by_class["eventplatform.errors.InvalidEventHeaders"]
    assert "'ce_time' is not RFC 3339" in bad_time["__connect.errors.exception.message"]
    assert "has no UTC offset" in bad_time["__connect.errors.exception.message"]
    for name, headers in by_class.items():
        expected_stage = "HEADER_CONVERTER" if "InvalidEventHeaders" in name else "VALUE_CONVERTER"
        assert headers["__connect.errors.stage"] == expected_stage
        assert headers["__connect.errors.topic"] == topic
        assert headers["eventplatform.errors.attempts"] == "0"
    assert b"\xffgarbage" in {r.value for r in letters}
    assert app.stats.retries == 0
