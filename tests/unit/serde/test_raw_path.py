"""The serde's raw fast path agrees with the full-schema path, including on bad input."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from typing import Annotated

import fastavro
import pytest

from eventplatform.errors import DeserializationError, SerializationError
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.schema import AvroDecimal, AvroEvent
from eventplatform.serde import AvroDeserializer, AvroSerializer
from eventplatform.serde.wire import frame_header


class Price(AvroEvent, namespace="test.raw"):
    amount: Annotated[Decimal, AvroDecimal(6, 2)]


def body(schema: dict[str, object], record: dict[str, object]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(schema), record)
    return buffer.getvalue()


async def test_decimal_beyond_precision_on_the_wire_is_a_deserialization_error() -> None:
    async with MemoryRegistry() as registry:
        writer = await AvroSerializer(registry).prepare(Price, "prices")
        raw = {
            "type": "record",
            "name": "test.raw.Price",
            "fields": [{"name": "amount", "type": "bytes"}],
        }
        data = frame_header(writer.schema_id) + body(raw, {"amount": (10**8).to_bytes(4, "big")})
        with pytest.raises(DeserializationError, match=r"does not validate as test\.raw\.Price"):
            await AvroDeserializer(registry).deserialize(data, Price, topic="prices")


async def test_writer_with_another_decimal_scale_is_read_with_the_writers_scale() -> None:
    # Same Parsing Canonical Form (it drops logical types), different meaning of the bytes:
    # the raw path, which applies the reader's scale, must not be used.
    schema = json.loads(Price.avro_schema_json())
    schema["fields"][0]["type"]["scale"] = 3
    async with MemoryRegistry() as registry:
        registered = await registry.register("prices-value", json.dumps(schema))
        data = frame_header(registered.id) + body(schema, {"amount": Decimal("1.230")})
        decoded = await AvroDeserializer(registry).deserialize(data, Price)
        assert decoded.amount == Decimal("1.23")


async def test_decimal_with_more_places_than_the_scale_is_a_serialization_error() -> None:
    async with MemoryRegistry() as registry:
        serializer = AvroSerializer(registry)
        await serializer.prepare(Price, "prices")
        with pytest.raises(SerializationError, match=r"Price\.amount: 1\.001 has more than 2"):
            serializer.serialize_prepared(Price.model_construct(amount=Decimal("1.001")), "prices")


async def test_encoded_bytes_equal_the_full_schema_writer() -> None:
    async with MemoryRegistry() as registry:
        writer = await AvroSerializer(registry).prepare(Price, "prices")
        event = Price(amount=Decimal("-1234.5"))
        expected = body(json.loads(Price.avro_schema_json()), event.to_avro())
        assert writer.encode(event) == frame_header(writer.schema_id) + expected
