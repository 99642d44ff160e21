"""Decoding a poll: metadata, one registry round trip, routing, typed events or the reason not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from eventplatform.app import Context, RetryPolicy
from eventplatform.app.delivery import Decoder, Outcome
from eventplatform.app.dlq import Stage
from eventplatform.app.routing import Router
from eventplatform.cloudevents import InvalidEventHeaders
from eventplatform.errors import NotWireFormat, RegistryUnavailable, UnknownSchemaId
from eventplatform.registry import MemoryRegistry
from eventplatform.serde import AvroDeserializer, AvroSerializer, SubjectNameStrategy, frame_header
from tests.unit.app.records import Placed, Shipped, event_record, record, tp


async def handler(event: Any, ctx: Context) -> None:
    pass


@pytest_asyncio.fixture
async def registry() -> AsyncIterator[MemoryRegistry]:
    async with MemoryRegistry() as started:
        yield started


def router() -> Router:
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
        )
    )
    return routes


async def test_a_poll_decodes_into_typed_events_and_reasons(registry: MemoryRegistry) -> None:
    serializer = AvroSerializer(registry, strategy=SubjectNameStrategy.TOPIC_RECORD)
    good = await event_record(serializer, Placed(order_id="o1", amount=3), 0, key=b"k")
    headers = good.headers
    shipped = await event_record(serializer, Shipped(order_id="o1"), 1)
    garbage = record(2, b"not avro", headers=headers)
    unknown = record(3, frame_header(4242) + b"\x00", headers=headers)
    partial = record(4, good.value, headers=[("ce_id", b"1")])

    decoder = Decoder(router(), AvroDeserializer(registry))
    [batch] = await decoder.decode({tp(): [good, shipped, garbage, unknown, partial]})

    assert batch[0].event == Placed(order_id="o1", amount=3)
    assert batch[0].route is not None
    assert batch[0].idempotency_key == batch[0].metadata.id
    assert batch[1].outcome is Outcome.UNHANDLED
    assert batch[1].route is None
    assert batch[1].error is None
    assert isinstance(batch[2].error, NotWireFormat)
    assert batch[2].stage is Stage.VALUE_CONVERTER
    assert isinstance(batch[3].error, UnknownSchemaId)
    assert "offset 3" in str(batch[3].error)
    # Some ce_* headers but not all: malformed CloudEvents, not a foreign record.
    assert isinstance(batch[4].error, InvalidEventHeaders)
    assert "missing CloudEvents header 'ce_source'" in str(batch[4].error)
    assert batch[4].stage is Stage.HEADER_CONVERTER


async def test_an_unreachable_registry_fails_the_whole_poll(registry: MemoryRegistry) -> None:
    serializer = AvroSerializer(registry, strategy=SubjectNameStrategy.TOPIC_RECORD)
    good = await event_record(serializer, Placed(order_id="o1"), 0)

    class Down(MemoryRegistry):
        async def get_by_id(self, schema_id: int) -> Any:
            raise RegistryUnavailable("registry down")

    async with Down() as down:
        decoder = Decoder(router(), AvroDeserializer(down))
        with pytest.raises(RegistryUnavailable):
            await decoder.decode({tp(): [good]})
