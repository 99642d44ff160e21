"""Confluent wire format, caching, schema resolution and errors of the Avro serde."""

from __future__ import annotations

import asyncio
import json
import struct
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from eventplatform.demo.events import Currency, LineItem, OrderPlaced
from eventplatform.errors import (
    CorruptPayload,
    DeserializationError,
    NotWireFormat,
    RegistryUnavailable,
    SchemaResolutionError,
    TruncatedPayload,
    UnknownSchemaId,
)
from eventplatform.registry.base import Schema
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.schema import AvroEvent
from eventplatform.serde import AvroDeserializer, AvroSerializer, SubjectNameStrategy


class CountingRegistry(MemoryRegistry):
    """The memory registry, counting lookups by id and failing the first ``fail`` of them."""

    def __init__(self, fail: int = 0) -> None:
        super().__init__()
        self.by_id_calls = 0
        self.fail = fail

    async def get_by_id(self, schema_id: int) -> Schema:
        self.by_id_calls += 1
        await asyncio.sleep(0.01)  # let concurrent callers pile up
        if self.fail:
            self.fail -= 1
            raise RegistryUnavailable("registry down (test)")
        return await super().get_by_id(schema_id)


def order() -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid4(),
        customer_id="c-1",
        items=[LineItem(sku="SKU-1", quantity=2, unit_price=Decimal("9.99"))],
        total=Decimal("19.98"),
        currency=Currency.EUR,
        placed_at=datetime(2026, 5, 1, 12, 0, tzinfo=UTC),
    )


class V1(AvroEvent, namespace="test.evolve", name="Thing"):
    id: str


class V2(AvroEvent, namespace="test.evolve", name="Thing"):
    id: str
    colour: str = "blue"


class WrongType(AvroEvent, namespace="test.evolve", name="Thing"):
    id: int


async def test_round_trip_and_frame() -> None:
    async with CountingRegistry() as registry:
        data = await AvroSerializer(registry).serialize(event := order(), "orders")
        assert data[0] == 0
        (schema_id,) = struct.unpack(">I", data[1:5])
        assert (await registry.get_version("orders-value")).id == schema_id
        decoded = await AvroDeserializer(registry).deserialize(data, OrderPlaced)
        assert decoded == event
        assert isinstance(decoded, OrderPlaced)


async def test_generic_mode_returns_plain_values() -> None:
    async with MemoryRegistry() as registry:
        data = await AvroSerializer(registry).serialize(event := order(), "orders")
        schema_id, value = await AvroDeserializer(registry).deserialize_generic(data)
        assert value["customer_id"] == "c-1"
        assert value["order_id"] == event.order_id
        assert schema_id == struct.unpack(">I", data[1:5])[0]


async def test_known_id_costs_no_registry_call_and_concurrent_misses_share_one() -> None:
    async with CountingRegistry() as registry:
        data = await AvroSerializer(registry).serialize(order(), "orders")
        deserializer = AvroDeserializer(registry)
        await asyncio.gather(*(deserializer.deserialize(data, OrderPlaced) for _ in range(20)))
        for _ in range(100):
            deserializer.decode(data, OrderPlaced)
        assert registry.by_id_calls == 1


async def test_registry_failure_is_not_cached() -> None:
    async with CountingRegistry(fail=1) as registry:
        data = await AvroSerializer(registry).serialize(order(), "orders")
        deserializer = AvroDeserializer(registry)
        with pytest.raises(RegistryUnavailable):
            await deserializer.deserialize(data, OrderPlaced)
        assert (await deserializer.deserialize(data, OrderPlaced)).customer_id == "c-1"
        assert registry.by_id_calls == 2


async def test_serializer_registers_once_per_class_and_topic() -> None:
    async with MemoryRegistry() as registry:
        serializer = AvroSerializer(registry)
        results = await asyncio.gather(*(serializer.serialize(order(), "o") for _ in range(10)))
        assert len({r[:5] for r in results}) == 1
        assert await registry.list_versions("o-value") == [1]


@pytest.mark.parametrize(
    ("strategy", "subject"),
    [
        (SubjectNameStrategy.TOPIC, "orders-value"),
        (SubjectNameStrategy.RECORD, "com.example.orders.OrderPlaced"),
        (SubjectNameStrategy.TOPIC_RECORD, "orders-com.example.orders.OrderPlaced"),
    ],
)
async def test_subject_name_strategies(strategy: SubjectNameStrategy, subject: str) -> None:
    async with MemoryRegistry() as registry:
        await AvroSerializer(registry, strategy=strategy).serialize(order(), "orders")
        assert await registry.list_subjects() == [subject]


async def test_key_subject() -> None:
    async with MemoryRegistry() as registry:
        await AvroSerializer(registry, is_key=True).serialize(V1(id="k"), "things")
        assert await registry.list_subjects() == ["things-key"]


async def test_writer_resolved_to_newer_reader() -> None:
    async with MemoryRegistry() as registry:
        data = await AvroSerializer(registry).serialize(V1(id="x"), "things")
        assert await AvroDeserializer(registry).deserialize(data, V2) == V2(id="x", colour="blue")


async def test_unresolvable_writer_names_the_position() -> None:
    async with MemoryRegistry() as registry:
        data = await AvroSerializer(registry).serialize(V1(id="x"), "things")
        with pytest.raises(SchemaResolutionError) as info:
            await AvroDeserializer(registry).deserialize(
                data, WrongType, topic="things", partition=3, offset=99
            )
        assert str(info.value).startswith("topic 'things', partition 3, offset 99: ")


@pytest.mark.parametrize(
    ("payload", "error", "text"),
    [
        (b"plain text", NotWireFormat, "not the Confluent magic byte"),
        (b"\x00\x00", NotWireFormat, "shorter than the 5-byte"),
        (b"\x00\x00\x00\x30\x39" + b"\x02x", UnknownSchemaId, "schema id 12345"),
    ],
)
async def test_bad_bytes(payload: bytes, error: type[DeserializationError], text: str) -> None:
    async with MemoryRegistry() as registry:
        with pytest.raises(error, match=text) as info:
            await AvroDeserializer(registry).deserialize(
                payload, V1, topic="t", partition=0, offset=7
            )
        assert info.value.offset == 7
        assert info.value.topic == "t"


async def test_truncated_and_trailing_bytes() -> None:
    async with MemoryRegistry() as registry:
        data = await AvroSerializer(registry).serialize(order(), "orders")
        deserializer = AvroDeserializer(registry)
        with pytest.raises(TruncatedPayload, match="ends early"):
            await deserializer.deserialize(data[:-10], OrderPlaced, topic="orders", offset=1)
        with pytest.raises(CorruptPayload, match="bytes left after the record"):
            await deserializer.deserialize(data + b"\x00\x01", OrderPlaced, topic="orders")


async def test_referenced_writer_schema_is_resolved() -> None:
    # A schema registered by another tool with a reference to a named type in another subject.
    async with MemoryRegistry() as registry:
        await registry.register(
            "money", json.dumps({"type": "fixed", "name": "test.Money", "size": 4})
        )
        from eventplatform.registry.base import SchemaReference

        registered = await registry.register(
            "priced-value",
            json.dumps(
                {
                    "type": "record",
                    "name": "test.Priced",
                    "fields": [{"name": "amount", "type": "test.Money"}],
                }
            ),
            references=(SchemaReference("test.Money", "money", 1),),
        )
        payload = b"\x00" + struct.pack(">I", registered.id) + b"\x01\x02\x03\x04"
        _, value = await AvroDeserializer(registry).deserialize_generic(payload)
        assert value == {"amount": b"\x01\x02\x03\x04"}
