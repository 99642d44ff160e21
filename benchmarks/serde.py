"""Serde benchmark: typed event ⇄ Confluent-framed Avro bytes.

References, all on the same ``OrderPlaced`` event (a nested array of records, decimals, an
enum, a uuid, a timestamp and an optional string):

- raw fastavro: hand-written ``model_dump()`` + ``schemaless_writer`` with a pre-parsed schema
  (encode); ``schemaless_reader`` + ``model_validate`` (decode). Goals ≥ 0.9×.
- confluent-kafka's ``AvroSerializer``/``AvroDeserializer`` behind its ``mock://`` registry;
  theirs decodes to a dict, ours to a validated typed event. Goals ≥ 1.6× encode, ≥ 2.5× decode.
- dataclasses-avroschema's pydantic ``AvroBaseModel.serialize``/``deserialize`` (no framing).

Also counts the registry requests made while decoding many records of a known schema id.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from io import BytesIO
from typing import Any

import fastavro
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer as ConfluentDeserializer
from confluent_kafka.schema_registry.avro import AvroSerializer as ConfluentSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from dataclasses_avroschema import types as da_types
from dataclasses_avroschema.pydantic import AvroBaseModel

from benchmarks.harness import Comparison, Result, print_results, time_sync
from eventplatform.demo.events import Currency, LineItem, OrderPlaced
from eventplatform.registry.base import Schema
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.serde import AvroDeserializer, AvroSerializer
from eventplatform.serde.wire import frame_header

TOPIC = "orders"


def sample() -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid.UUID("6e355f74-553c-43cc-8b78-87e0ed16fafc"),
        customer_id="customer-000123",
        items=[
            LineItem(sku=f"SKU-{i:05d}", quantity=i + 1, unit_price=Decimal("19.99"))
            for i in range(3)
        ],
        total=Decimal("119.94"),
        currency=Currency.EUR,
        placed_at=datetime(2026, 11, 25, 12, 30, 15, 123000, tzinfo=UTC),
        note="leave at the door",
    )


class DaCurrency(enum.Enum):
    EUR = "EUR"
    USD = "USD"
    GBP = "GBP"

    class Meta:
        namespace = "com.example.orders"


class DaLineItem(AvroBaseModel):
    sku: str
    quantity: da_types.Int32
    unit_price: da_types.condecimal(max_digits=10, decimal_places=2)  # type: ignore[valid-type]


class DaOrderPlaced(AvroBaseModel):
    order_id: uuid.UUID
    customer_id: str
    items: list[DaLineItem]
    total: da_types.condecimal(max_digits=10, decimal_places=2)  # type: ignore[valid-type]
    currency: DaCurrency
    placed_at: datetime
    note: str | None = None


class CountingRegistry(MemoryRegistry):
    """Counts the lookups by id that reach the registry."""

    calls = 0

    async def get_by_id(self, schema_id: int) -> Schema:
        self.calls += 1
        return await super().get_by_id(schema_id)


async def run(rounds: int = 7, ops: int = 20_000) -> list[Comparison]:
    event = sample()
    registry = CountingRegistry()
    await registry.start()
    serializer = AvroSerializer(registry)
    writer = await serializer.prepare(OrderPlaced, TOPIC)
    deserializer = AvroDeserializer(registry)
    data = writer.encode(event)
    await deserializer.ensure([deserializer.schema_id(data)])
    assert deserializer.decode(data, OrderPlaced) == event

    parsed = fastavro.parse_schema(OrderPlaced.avro_schema())
    header = frame_header(writer.schema_id)

    def raw_encode() -> bytes:
        buffer = BytesIO()
        buffer.write(header)
        fastavro.schemaless_writer(buffer, parsed, event.model_dump())
        return buffer.getvalue()

    def raw_decode() -> OrderPlaced:
        buffer = BytesIO(data)
        buffer.seek(5)
        return OrderPlaced.model_validate(fastavro.schemaless_reader(buffer, parsed, None))

    assert raw_encode() == data
    assert raw_decode() == event

    client = SchemaRegistryClient.new_client({"url": "mock://bench"})
    context = SerializationContext(TOPIC, MessageField.VALUE)
    confluent_ser = ConfluentSerializer(
        client, OrderPlaced.avro_schema_json(), to_dict=lambda e, ctx: e.model_dump()
    )
    confluent_de = ConfluentDeserializer(client)
    confluent_bytes = confluent_ser(event, context)
    assert confluent_bytes is not None
    assert confluent_de(confluent_bytes, context)["customer_id"] == event.customer_id

    da_event = DaOrderPlaced(
        order_id=event.order_id,
        customer_id=event.customer_id,
        items=[DaLineItem(**i.model_dump()) for i in event.items],
        total=event.total,
        currency=DaCurrency.EUR,
        placed_at=event.placed_at,
        note=event.note,
    )
    da_bytes = da_event.serialize()
    assert DaOrderPlaced.deserialize(da_bytes) == da_event

    calls_before = registry.calls
    results: dict[str, Result] = {
        name: Result(name)
        for name in (
            "ours-encode",
            "raw-encode",
            "confluent-encode",
            "da-encode",
            "ours-decode",
            "raw-decode",
            "confluent-decode",
            "da-decode",
        )
    }
    measured = {
        "ours-encode": lambda: writer.encode(event),
        "raw-encode": raw_encode,
        "confluent-encode": lambda: confluent_ser(event, context),
        "da-encode": da_event.serialize,
        "ours-decode": lambda: deserializer.decode(data, OrderPlaced),
        "raw-decode": raw_decode,
        "confluent-decode": lambda: confluent_de(confluent_bytes, context),
        "da-decode": lambda: DaOrderPlaced.deserialize(da_bytes),
    }
    for _ in range(rounds):
        for name, fn in measured.items():
            results[name].rounds.append(time_sync(fn, ops))
    requests = registry.calls - calls_before
    await registry.close()

    r = results
    r["raw-encode"].name = "model_dump + fastavro.schemaless_writer"
    r["raw-decode"].name = "fastavro.schemaless_reader + model_validate"
    r["confluent-encode"].name = "confluent-kafka AvroSerializer (mock://)"
    r["confluent-decode"].name = "confluent-kafka AvroDeserializer → dict"
    r["da-encode"].name = "dataclasses-avroschema serialize (unframed)"
    r["da-decode"].name = "dataclasses-avroschema deserialize (unframed)"
    comparisons = [
        Comparison("encode", r["ours-encode"], r["raw-encode"], goal=0.9),
        Comparison("decode → typed", r["ours-decode"], r["raw-decode"], goal=0.9),
        Comparison("encode", r["ours-encode"], r["confluent-encode"], goal=1.6),
        Comparison("decode → typed", r["ours-decode"], r["confluent-decode"], goal=2.5),
        Comparison("encode", r["ours-encode"], r["da-encode"]),
        Comparison("decode → typed", r["ours-decode"], r["da-decode"]),
    ]
    print_results(
        f"serde: OrderPlaced, {len(data)} bytes framed, median of {rounds} rounds × {ops:,} ops",
        comparisons,
        [
            f"registry requests while decoding {rounds * ops * 2:,} records of a known id: "
            f"{requests}"
        ],
    )
    return comparisons


def main(argv: list[str] | None = None) -> Any:
    """Run the serde benchmark."""
    return asyncio.run(run())


if __name__ == "__main__":
    main()
