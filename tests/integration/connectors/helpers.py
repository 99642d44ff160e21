"""Event classes and helpers shared by the connector tests."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Annotated, Any, Self, TypeVar
from uuid import UUID

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition
from pydantic import AwareDatetime, Field

from eventplatform.connectors import (
    Connector,
    ConnectorState,
    Source,
    SourceConfig,
    SourcePosition,
    SourceRecord,
)
from eventplatform.registry.base import SchemaRegistry
from eventplatform.schema import AvroDecimal, AvroEnum, AvroEvent, Int32, Millis
from eventplatform.serde import AvroDeserializer
from tests.waiting import until

E = TypeVar("E", bound=AvroEvent)


class Tick(AvroEvent, namespace="tests.connectors"):
    """A numbered tick."""

    n: Annotated[int, Int32] = Field(description="Its number.")
    label: str = Field(default="", description="A free label.")


class Currency(AvroEnum, namespace="tests.connectors"):
    """A currency."""

    EUR = "EUR"
    USD = "USD"


class Line(AvroEvent, namespace="tests.connectors"):
    """One line of an order."""

    sku: str = Field(description="The product.")
    quantity: Annotated[int, Int32] = Field(description="How many.")
    price: Annotated[Decimal, AvroDecimal(10, 2)] = Field(description="Price of one.")


class Order(AvroEvent, namespace="tests.connectors"):
    """An order was placed."""

    order_id: UUID = Field(description="The order.")
    customer: str = Field(description="Who placed it.")
    lines: list[Line] = Field(description="What was ordered.")
    total: Annotated[Decimal, AvroDecimal(10, 2)] = Field(description="What it costs.")
    currency: Currency = Field(description="In which currency.")
    placed_at: Annotated[AwareDatetime, Millis] = Field(description="When.")
    note: str | None = Field(default=None, description="A note.")


def order_json(n: int = 1, **changes: Any) -> dict[str, Any]:
    """A valid Order as JSON data; ``changes`` replace fields."""
    data: dict[str, Any] = {
        "order_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"order-{n}")),
        "customer": f"c-{n % 7}",
        "lines": [{"sku": f"SKU-{n}", "quantity": 1 + n % 3, "price": "2.50"}],
        "total": str(Decimal("2.50") * (1 + n % 3)),
        "currency": "EUR",
        "placed_at": datetime(2026, 5, 1, 12, 0, tzinfo=UTC).isoformat(),
    }
    data.update(changes)
    return data


@asynccontextmanager
async def running(connector: Connector[Any]) -> AsyncIterator[Connector[Any]]:
    """Run ``connector`` in a task for the block; stop it and wait for it after."""
    task = asyncio.create_task(connector.run())
    await wait_running(connector, task)
    try:
        yield connector
    finally:
        connector.stop()
        await task


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 20.0) -> None:
    """Wait until ``await check()`` is true."""
    await until(check, within=within, what=getattr(check, "__name__", repr(check)))


async def wait_running(connector: Connector[Any], task: asyncio.Task[None]) -> None:
    """Wait until ``connector`` runs (or its task ended, which then raises)."""
    await until(
        lambda: connector.state is ConnectorState.RUNNING or task.done(),
        within=30,
        what=f"{connector!r} to start",
    )
    if connector.state is not ConnectorState.RUNNING:
        await task
        raise AssertionError(f"{connector!r} ended before running")


@dataclass(slots=True)
class Received:
    """A record read back from a topic."""

    key: bytes | None
    value: bytes
    headers: dict[str, str]
    offset: int


class TopicReader:
    """Reads topics from their beginning; decodes Confluent Avro values."""

    def __init__(self, servers: str, registry: SchemaRegistry) -> None:
        self.servers = servers
        self.deserializer = AvroDeserializer(registry)
        self._probe: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> Self:
        self._probe = AIOKafkaConsumer(bootstrap_servers=self.servers)
        await self._probe.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._probe is not None:
            await self._probe.stop()

    async def end_offset(self, topic: str) -> int:
        """The sum of the end offsets of ``topic``'s partitions (0 for a missing topic)."""
        assert self._probe is not None
        partitions = await self._probe.topics() and self._probe.partitions_for_topic(topic)
        if not partitions:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.servers)
            await admin.start()
            try:
                (described,) = await admin.describe_topics([topic])
            finally:
                await admin.close()
            if described["error_code"]:
                return 0
            partitions = {p["partition"] for p in described["partitions"]}
        ends = await self._probe.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())

    async def read(self, topic: str, expected: int, *, within: float = 20.0) -> list[Received]:
        """At least ``expected`` records of ``topic`` (all that arrive ``within`` seconds)."""
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=self.servers, auto_offset_reset="earliest"
        )
        await consumer.start()
        found: list[Received] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        try:
            while len(found) < expected and loop.time() < deadline:
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for r in records:
                        headers = {k: v.decode() for k, v in r.headers if v is not None}
                        found.append(Received(r.key, r.value, headers, r.offset))
        finally:
            await consumer.stop()
        return found

    async def decode(self, received: Received, event_type: type[E]) -> E:
        """The event in ``received``."""
        return await self.deserializer.deserialize(received.value, event_type)


class CountingConfig(SourceConfig):
    """Settings of :class:`CountingSource`."""

    count: int = 10
    fail_at: int | None = None


class CountingSource(Source[CountingConfig]):
    """Yields Tick 1..count, resuming after the last committed tick."""

    async def records(self) -> AsyncIterator[SourceRecord]:
        partition = {"counter": self.name}
        start = (self.committed(partition) or {}).get("n", 0)
        for n in range(start + 1, self.config.count + 1):
            if self.stopping:
                return
            if n == self.config.fail_at:
                raise RuntimeError(f"tick {n} exploded")
            yield SourceRecord(
                event=Tick(n=n),
                key=str(n % 3),
                event_id=f"{self.name}-{n}",
                position=SourcePosition(partition, {"n": n}),
            )


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def header(received: Received, name: str) -> str | None:
    """A header of a received record."""
    return received.headers.get(name)
