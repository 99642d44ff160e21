"""The coalescer: concurrent submits shipped together, answered one by one, in key order."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from aiokafka import errors as kafka_errors

from eventplatform.errors import (
    EventPlatformError,
    PublishTimeout,
    ResourceStateError,
    SerializationError,
)
from eventplatform.producer import EventProducer, Outgoing, PublishResult
from eventplatform.producer.coalescer import Coalescer
from eventplatform.schema import AvroEvent
from eventplatform.settings import Settings
from tests.waiting import until


class Tick(AvroEvent, namespace="tests.coalescer"):
    n: int


class FakeProducer:
    """The producer's one-pass batch (``_publish_outcomes``), recording each call.

    ``n < 0`` cannot be encoded: its outcome is its own error, as the producer's isolating
    pass gives it (tests/integration/producer shows that with the real producer).
    """

    def __init__(self, *, fail_with: BaseException | None = None) -> None:
        self.calls: list[list[int]] = []
        self.fail_with = fail_with
        self.settings = Settings()  # whose principal a refusal names
        self.release = asyncio.Event()
        self.release.set()

    async def _publish_outcomes(
        self, items: list[Outgoing], *, isolate: bool, stop: object, traceparent: str | None
    ) -> list[PublishResult | EventPlatformError]:
        assert isolate
        numbers = [cast(Tick, item.event).n for item in items]
        self.calls.append(numbers)
        await self.release.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return [
            SerializationError("n must not be negative")
            if n < 0
            else PublishResult("t", 0, n, 0, f"id-{n}", "")
            for n in numbers
        ]


def coalescer(producer: FakeProducer, **options: int) -> Coalescer:
    """A coalescer over ``producer``."""
    return Coalescer(cast(EventProducer, producer), **options)


async def test_concurrent_submits_ship_as_one_batch_each_answered_its_own_result() -> None:
    producer = FakeProducer()
    async with coalescer(producer, max_in_flight=1) as shipping:
        results = await asyncio.gather(*(shipping.publish(Outgoing(Tick(n=n))) for n in range(5)))
    assert producer.calls == [[0, 1, 2, 3, 4]]
    assert [r.offset for r in results] == [0, 1, 2, 3, 4]


async def test_events_submitted_while_a_batch_is_in_flight_form_the_next_batch() -> None:
    producer = FakeProducer()
    producer.release.clear()
    async with coalescer(producer, max_in_flight=1, max_batch=2) as shipping:
        first = shipping.submit(Outgoing(Tick(n=0), key="k"))
        await until(lambda: producer.calls == [[0]], what="the first batch to leave alone")
        later = [shipping.submit(Outgoing(Tick(n=n), key="k")) for n in range(1, 6)]
        producer.release.set()
        await asyncio.gather(first, *later)
    assert producer.calls == [[0], [1, 2], [3, 4], [5]]


async def test_a_key_keeps_its_order_with_several_batches_in_flight() -> None:
    producer = FakeProducer()
    async with coalescer(producer, max_in_flight=4, max_batch=3) as shipping:
        futures = [shipping.submit(Outgoing(Tick(n=n), key=f"key-{n % 3}")) for n in range(30)]
        await asyncio.gather(*futures)
    shipped = [n for call in producer.calls for n in call]
    assert sorted(shipped) == list(range(30))
    for key in range(3):
        of_key = [n for n in shipped if n % 3 == key]
        assert of_key == sorted(of_key)


async def test_an_event_whose_key_is_in_flight_waits_while_other_keys_ship() -> None:
    producer = FakeProducer()
    producer.release.clear()
    async with coalescer(producer, max_in_flight=2) as shipping:
        first = shipping.submit(Outgoing(Tick(n=0), key="a"))
        await until(lambda: producer.calls == [[0]], what="the batch holding key a")
        later = [
            shipping.submit(Outgoing(Tick(n=1), key="a")),
            shipping.submit(Outgoing(Tick(n=2), key="b")),
        ]
        # 2 ships although 1 was submitted first: the marker that 1 is held back.
        await until(lambda: len(producer.calls) >= 2, what="a second batch")
        assert producer.calls == [[0], [2]]  # 1 waits for the batch holding key "a"
        producer.release.set()
        await asyncio.gather(first, *later)
    assert producer.calls == [[0], [2], [1]]


async def test_an_event_that_cannot_be_encoded_fails_only_its_own_request() -> None:
    producer = FakeProducer()
    async with coalescer(producer, max_in_flight=1) as shipping:
        outcomes = await asyncio.gather(
            *(shipping.publish(Outgoing(Tick(n=n))) for n in (1, -1, 2)),
            return_exceptions=True,
        )
    assert isinstance(outcomes[0], PublishResult)
    assert isinstance(outcomes[1], SerializationError)
    assert isinstance(outcomes[2], PublishResult)


async def test_a_kafka_failure_fails_the_whole_batch_as_an_eventplatform_error() -> None:
    producer = FakeProducer(fail_with=kafka_errors.KafkaTimeoutError())
    failures: list[BaseException] = []
    shipping = Coalescer(cast(EventProducer, producer), max_in_flight=1, on_failed=failures.append)
    outcomes = await asyncio.gather(
        *(shipping.publish(Outgoing(Tick(n=n))) for n in range(3)), return_exceptions=True
    )
    await shipping.aclose()
    assert producer.calls == [[0, 1, 2]]  # not retried one by one
    assert len({id(o) for o in outcomes}) == 1  # one failure, told to each caller
    assert all(isinstance(o, PublishTimeout) for o in outcomes)
    assert len(failures) == 1


async def test_closing_waits_for_submitted_events_then_refuses_new_ones() -> None:
    producer = FakeProducer()
    producer.release.clear()
    shipping = coalescer(producer)
    pending = shipping.submit(Outgoing(Tick(n=7)))
    closing = asyncio.create_task(shipping.aclose())
    # Tasks run in the order they were made: once the event is in flight, aclose() has run
    # too, up to where it waits.
    await until(lambda: producer.calls == [[7]], what="the event in flight")
    assert not closing.done()
    producer.release.set()
    await closing
    assert pending.result().offset == 7
    with pytest.raises(ResourceStateError):
        shipping.submit(Outgoing(Tick(n=8)))
