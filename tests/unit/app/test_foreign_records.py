"""Records without CloudEvents headers: derived metadata and the handler's idempotency key."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio

from eventplatform.app import Context, IdempotencyKey, RetryPolicy
from eventplatform.app.delivery import Decoder, Delivery, Outcome
from eventplatform.app.dlq import Stage
from eventplatform.app.routing import Router
from eventplatform.cloudevents import InvalidEventHeaders, record_event_id
from eventplatform.errors import ConfigurationError, DeserializationError, NotWireFormat
from eventplatform.registry import MemoryRegistry
from eventplatform.schema import AvroEvent
from eventplatform.serde import AvroDeserializer, AvroSerializer, SubjectNameStrategy
from tests.unit.app.records import Placed, Shipped, event_record, record, tp

# 2026-01-02T03:04:05.678Z
STAMP = 1767323045678


class Nested(AvroEvent, namespace="com.example"):
    order: Placed
    ratio: float = 0.0


async def handler(event: Any, ctx: Context) -> None:
    pass


@pytest_asyncio.fixture
async def registry() -> AsyncIterator[MemoryRegistry]:
    async with MemoryRegistry() as started:
        yield started


@pytest_asyncio.fixture
async def serializer(registry: MemoryRegistry) -> AvroSerializer:
    return AvroSerializer(registry, strategy=SubjectNameStrategy.TOPIC_RECORD)


def router(key: IdempotencyKey | None = None, sources: dict[str, str] | None = None) -> Router:
    routes = Router()
    routes.add(
        Router.make_route(
            Placed,
            handler,
            topic=None,
            timeout=1,
            retry=RetryPolicy(),
            transactional=False,
            dlq_topic=None,
            dlq_suffix=".dlq",
            idempotency_key=key,
            sources=sources,
        )
    )
    return routes


async def decode(registry: MemoryRegistry, routes: Router, records: list[Any]) -> list[Delivery]:
    [batch] = await Decoder(routes, AvroDeserializer(registry)).decode({tp(): records})
    return batch


async def test_a_record_without_ce_headers_is_typed_with_derived_metadata(
    registry: MemoryRegistry, serializer: AvroSerializer
) -> None:
    value = await serializer.serialize(Placed(order_id="o1", amount=2), "orders")
    bare = record(7, value, key=b"o1", timestamp=STAMP, partition=0)
    [d] = await decode(registry, router(), [bare])

    assert d.error is None
    assert d.route is not None
    assert d.event == Placed(order_id="o1", amount=2)
    meta = d.metadata
    assert meta is not None
    assert meta.derived
    assert meta.type == "com.example.Placed"
    assert meta.time == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert meta.source == "/topics/orders"
    assert meta.id == record_event_id("orders", 0, 7, STAMP)
    assert d.idempotency_key == meta.id  # the default choice: once per record


async def test_derived_ids_are_stable_and_tell_positions_apart(
    registry: MemoryRegistry, serializer: AvroSerializer
) -> None:
    value = await serializer.serialize(Placed(order_id="o1"), "orders")
    first = await decode(registry, router(), [record(3, value, timestamp=STAMP)])
    again = await decode(registry, router(), [record(3, value, timestamp=STAMP)])
    other = await decode(registry, router(), [record(4, value, timestamp=STAMP)])
    # A recreated topic reuses offset 3, with a later timestamp.
    recreated = await decode(registry, router(), [record(3, value, timestamp=STAMP + 1)])
    ids = [batch[0].idempotency_key for batch in (first, again, other, recreated)]
    assert ids[0] == ids[1]
    assert len(set(ids)) == 3


async def test_a_configured_source_replaces_the_topic_default(
    registry: MemoryRegistry, serializer: AvroSerializer
) -> None:
    value = await serializer.serialize(Placed(order_id="o1"), "orders")
    [d] = await decode(registry, router(sources={"orders": "/legacy/orders"}), [record(0, value)])
    assert d.metadata is not None
    assert d.metadata.source == "/legacy/orders"


async def test_unhandled_foreign_records_get_metadata_too(
    registry: MemoryRegistry, serializer: AvroSerializer
) -> None:
    value = await serializer.serialize(Shipped(order_id="o1"), "orders")
    [d] = await decode(registry, router(), [record(0, value)])
    assert d.outcome is Outcome.UNHANDLED
    assert d.metadata is not None
    assert d.metadata.type == "com.example.Shipped"


async def test_a_foreign_tombstone_is_skipped_not_dead_lettered(
    registry: MemoryRegistry, serializer: AvroSerializer
) -> None:
    ours = await event_record(serializer, Placed(order_id="o1"), 1)
    [foreign, with_headers] = await decode(
        registry, router(), [record(0, None, key=b"o1"), record(1, None, headers=ours.headers)]
    )
    assert foreign.outcome is Outcome.UNHANDLED
    assert foreign.error is None
    assert foreign.metadata is not None
    assert foreign.metadata.type == "tombstone"
    # A CloudEvent must have a value: that one is still undecodable.
    assert isinstance(with_headers.error, NotWireFormat)
    assert with_headers.stage is Stage.VALUE_CONVERTER


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (IdempotencyKey.kafka_key(), "order-1"),
        (IdempotencyKey.header("x-id"), "req-9"),
        (IdempotencyKey.field("order_id"), "o1"),
        (IdempotencyKey.field("amount"), "42"),
    ],
)
async def test_the_handler_chooses_the_key_of_a_foreign_record(
    registry: MemoryRegistry, serializer: AvroSerializer, choice: IdempotencyKey, expected: str
) -> None:
    value = await serializer.serialize(Placed(order_id="o1", amount=42), "orders")
    bare = record(0, value, key=b"order-1", headers=[("x-id", b"req-9")])
    [d] = await decode(registry, router(choice), [bare])
    assert d.error is None
    assert d.idempotency_key == expected
    assert d.metadata is not None
    assert d.metadata.id == record_event_id("orders", 0, 0, 0)


async def test_binary_kafka_keys_become_hex(
    registry: MemoryRegistry, serializer: AvroSerializer
) -> None:
    value = await serializer.serialize(Placed(order_id="o1"), "orders")
    # What an Avro key serializer writes: framed, with a NUL byte PostgreSQL text cannot hold.
    [d] = await decode(
        registry, router(IdempotencyKey.kafka_key()), [record(0, value, key=b"\x00\x01o1")]
    )
    assert d.idempotency_key == "0x00016f31"


async def test_a_missing_key_part_falls_back_to_the_derived_id_and_says_so(
    registry: MemoryRegistry, serializer: AvroSerializer, caplog: pytest.LogCaptureFixture
) -> None:
    value = await serializer.serialize(Placed(order_id="o1"), "orders")
    keyless = [record(0, value), record(1, value)]
    with caplog.at_level(logging.WARNING, logger="eventplatform.app"):
        batch = await decode(registry, router(IdempotencyKey.kafka_key()), keyless)
    assert [d.idempotency_key for d in batch] == [
        record_event_id("orders", 0, 0, 0),
        record_event_id("orders", 0, 1, 0),
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "orders[0]@0 has no IdempotencyKey.kafka_key()" in warnings[0]


async def test_cloudevents_records_keep_their_own_key_whatever_the_choice(
    registry: MemoryRegistry, serializer: AvroSerializer
) -> None:
    ours = await event_record(
        serializer, Placed(order_id="o1"), 0, key=b"k", idempotency_key="producer-key"
    )
    [d] = await decode(registry, router(IdempotencyKey.kafka_key()), [ours])
    assert d.idempotency_key == "producer-key"
    assert d.metadata is not None
    assert not d.metadata.derived


async def test_a_field_key_that_cannot_be_decoded_is_a_value_converter_dead_letter(
    registry: MemoryRegistry, serializer: AvroSerializer
) -> None:
    value = await serializer.serialize(Placed(order_id="o1"), "orders")
    [d] = await decode(registry, router(IdempotencyKey.field("order_id")), [record(0, value[:-2])])
    assert isinstance(d.error, DeserializationError)
    assert d.stage is Stage.VALUE_CONVERTER
    assert d.route is None


async def test_malformed_ce_time_is_a_header_converter_dead_letter(
    registry: MemoryRegistry, serializer: AvroSerializer
) -> None:
    ours = await event_record(serializer, Placed(order_id="o1"), 5)
    headers = [(n, b"2026-01-02T03:04:05" if n == "ce_time" else v) for n, v in ours.headers]
    [d] = await decode(registry, router(), [record(5, ours.value, headers=headers)])
    assert isinstance(d.error, InvalidEventHeaders)
    assert d.stage is Stage.HEADER_CONVERTER
    assert "offset 5" in str(d.error)
    assert "has no UTC offset" in str(d.error)


def test_a_field_choice_is_checked_against_the_class() -> None:
    with pytest.raises(ConfigurationError, match=r"com.example.Placed has no such field"):
        router(IdempotencyKey.field("orderid"))
    nested = Router()
    for name, kind in (("order", "record"), ("ratio", "double")):
        with pytest.raises(
            ConfigurationError, match=f"field of com.example.Nested has Avro type.*{kind}"
        ):
            nested.make_route(
                Nested,
                handler,
                topic="t",
                timeout=1,
                retry=RetryPolicy(),
                transactional=False,
                dlq_topic=None,
                dlq_suffix=".dlq",
                idempotency_key=IdempotencyKey.field(name),
            )


def test_a_key_choice_must_be_an_idempotency_key() -> None:
    with pytest.raises(ConfigurationError, match="takes an IdempotencyKey"):
        router("order_id")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="needs a header name"):
        IdempotencyKey.header("")
