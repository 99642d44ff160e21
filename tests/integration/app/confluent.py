"""Records as a stock Confluent client writes them: confluent-kafka's ``Producer`` and
``AvroSerializer`` against our registry's REST server, no CloudEvents headers.

confluent-kafka's registry client is synchronous, and the server answers on the test's event
loop: the producing runs in a thread (:func:`produce`), never on the loop itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from confluent_kafka import KafkaException, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from eventplatform.registry.base import SchemaRegistry
from eventplatform.registry.rest_server import serve, server_url

#: The writer schema of the Confluent side, written by hand as a non-Python team would.
ORDER_PLACED = """{
  "type": "record", "name": "OrderPlaced", "namespace": "com.example.orders",
  "fields": [
    {"name": "order_id", "type": "string"},
    {"name": "amount", "type": "long", "default": 0}
  ]
}"""

#: (Kafka key, value as a dict or None for a tombstone, headers)
Row = tuple[bytes | None, dict[str, Any] | None, Sequence[tuple[str, bytes]]]


@asynccontextmanager
async def registry_server(backend: SchemaRegistry) -> AsyncIterator[str]:
    """Serve ``backend`` over Confluent's REST API on a free loopback port; yield its URL."""
    runner = await serve(backend, "127.0.0.1", 0)
    try:
        yield server_url(runner)
    finally:
        await runner.cleanup()


def _produce(servers: str, registry_url: str, topic: str, schema: str, rows: Sequence[Row]) -> None:
    context = SerializationContext(topic, MessageField.VALUE)
    producer = Producer({"bootstrap.servers": servers, "enable.idempotence": True})
    failures: list[str] = []

    def delivered(error: Any, message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    with SchemaRegistryClient({"url": registry_url}) as client:
        serializer = AvroSerializer(client, schema)
        try:
            for key, value, headers in rows:
                producer.produce(
                    topic,
                    key=key,
                    value=None if value is None else serializer(value, context),
                    headers=list(headers),
                    on_delivery=delivered,
                )
            left = producer.flush(30)
        except KafkaException as exc:
            raise AssertionError(f"confluent-kafka could not produce to {topic}: {exc}") from exc
    assert left == 0, f"{left} records not delivered to {topic} within 30s"
    assert not failures, failures


async def produce(
    servers: str, registry_url: str, topic: str, rows: Sequence[Row], schema: str = ORDER_PLACED
) -> None:
    """Write ``rows`` to ``topic`` with confluent-kafka (acknowledged before returning)."""
    await asyncio.to_thread(_produce, servers, registry_url, topic, schema, rows)
