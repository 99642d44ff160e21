"""Values are decoded when their handler runs and dropped after; a bad value is dead-lettered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from eventplatform.app.delivery import Decoder
from eventplatform.app.dlq import H_CLASS_NAME, H_STAGE
from eventplatform.idempotency import MemoryStore
from eventplatform.registry import MemoryRegistry
from eventplatform.serde import AvroDeserializer, AvroSerializer, SubjectNameStrategy
from tests.unit.app.records import Placed, event_record, record, tp
from tests.unit.app.test_decoder import router
from tests.unit.app.test_loop import ScriptedConsumer, build


class CountingDeserializer(AvroDeserializer):
    """Counts the values decoded."""

    decoded = 0

    def decode(self, data: bytes, event_type: Any, **where: Any) -> Any:
        self.decoded += 1
        return super().decode(data, event_type, **where)


class HeaderSink:
    """Takes dead letters, keeping their headers."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, str]]] = []

    async def send_raw(self, topic: str, value: bytes | None, **options: Any) -> None:
        headers = {name: raw.decode() for name, raw in options.get("headers", ())}
        self.sent.append((topic, headers))


@pytest_asyncio.fixture
async def serializer() -> AsyncIterator[AvroSerializer]:
    async with MemoryRegistry() as registry:
        yield AvroSerializer(registry, strategy=SubjectNameStrategy.TOPIC_RECORD)


async def test_a_poll_is_routed_without_decoding_values_until_read(
    serializer: AvroSerializer,
) -> None:
    good = await event_record(serializer, Placed(order_id="o1", amount=3), 0)
    deserializer = CountingDeserializer(serializer.registry)
    [batch] = await Decoder(router(), deserializer).decode({tp(): [good]})
    assert batch[0].route is not None
    assert deserializer.decoded == 0

    assert batch[0].event == Placed(order_id="o1", amount=3)
    assert batch[0].event == Placed(order_id="o1", amount=3)
    assert deserializer.decoded == 1  # decoded once, then kept until released

    batch[0].release()
    assert batch[0].event == Placed(order_id="o1", amount=3)
    assert deserializer.decoded == 2


async def test_a_value_that_does_not_decode_is_dead_lettered_and_the_poll_moves_on(
    serializer: AvroSerializer,
) -> None:
    r0 = await event_record(serializer, Placed(order_id="a"), 0, key=b"1")
    bad = await event_record(serializer, Placed(order_id="b", amount=7), 1, key=b"2")
    truncated = record(2, bad.value[:-1], key=b"2", headers=bad.headers)  # framing is fine
    r3 = await event_record(serializer, Placed(order_id="c"), 3, key=b"3")
    stopping = asyncio.Event()
    seen: list[str] = []
    sink = HeaderSink()
    async with MemoryStore() as store:
        consumer = ScriptedConsumer([{tp(): [r0, truncated, r3]}], stopping)
        loop = build(serializer, store, consumer, stopping, seen, sink)  # type: ignore[arg-type]
        await loop.run()
    assert seen == ["a", "c"]
    assert consumer.commits == [{tp(): 4}]
    [(topic, headers)] = sink.sent
    assert topic == "orders.dlq"
    assert headers[H_STAGE] == "VALUE_CONVERTER"
    assert headers[H_CLASS_NAME] == "eventplatform.serde.AvroDeserializer"
    assert loop.stats.dead_lettered == 1
