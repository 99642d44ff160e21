"""The Source framework against the real broker: order, positions, restarts, failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from eventplatform.connectors import OffsetStore, SourcePosition, SourceRecord
from eventplatform.connectors.sdk.connector import Source, SourceConfig
from eventplatform.errors import PublishError
from eventplatform.producer import PublishResult
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings
from tests.integration.connectors.helpers import CountingSource, Tick, TopicReader


def counting(
    name: str,
    topic: str,
    settings: Settings,
    registry: MemoryRegistry,
    offsets: OffsetStore,
    **config: object,
) -> CountingSource:
    return CountingSource(
        name=name,
        topic=topic,
        event_type=Tick,
        config=config,
        settings=settings,
        registry=registry,
        offsets=offsets,
    )


async def test_records_are_published_in_order_with_positions_committed(
    settings: Settings,
    registry: MemoryRegistry,
    offsets: OffsetStore,
    reader: TopicReader,
    unique_topic: Callable[[str], str],
) -> None:
    topic = unique_topic("ticks")
    source = counting("ticker", topic, settings, registry, offsets, count=50, max_batch=7)
    await source.run()

    received = await reader.read(topic, 50)
    ticks = [(await reader.decode(r, Tick)).n for r in received]
    assert sorted(ticks) == list(range(1, 51))
    for key in (b"0", b"1", b"2"):  # one partition per key: its ticks in order
        of_key = [t for r, t in zip(received, ticks, strict=True) if r.key == key]
        assert of_key == sorted(of_key)
    first = received[ticks.index(1)]
    assert first.headers["ce_id"] == "ticker-1"
    assert first.headers["ce_source"] == "/connectors/ticker"
    assert first.headers["ce_type"] == "tests.connectors.Tick"
    assert offsets.get("ticker", {"counter": "ticker"}) == {"n": 50}
    assert source.stats.records == 50
    assert source.state.value == "stopped"


async def test_a_restart_resumes_after_the_last_committed_position(
    settings: Settings,
    registry: MemoryRegistry,
    offsets_topic: str,
    reader: TopicReader,
    unique_topic: Callable[[str], str],
) -> None:
    topic = unique_topic("ticks")
    async with OffsetStore(topic=offsets_topic, settings=settings) as offsets:
        await counting("ticker", topic, settings, registry, offsets, count=5).run()
    # A new store reads the compacted topic from the start, as a restarted process would.
    async with OffsetStore(topic=offsets_topic, settings=settings) as offsets:
        assert offsets.get("ticker", {"counter": "ticker"}) == {"n": 5}
        await counting("ticker", topic, settings, registry, offsets, count=12).run()

    received = await reader.read(topic, 12)
    ids = [r.headers["ce_id"] for r in received]
    assert sorted(ids) == sorted(f"ticker-{n}" for n in range(1, 13))


async def test_a_generator_failure_fails_the_run_after_committing_what_was_durable(
    settings: Settings,
    registry: MemoryRegistry,
    offsets: OffsetStore,
    reader: TopicReader,
    unique_topic: Callable[[str], str],
) -> None:
    topic = unique_topic("ticks")
    source = counting("ticker", topic, settings, registry, offsets, count=10, fail_at=6)
    with pytest.raises(RuntimeError, match="tick 6 exploded"):
        await source.run()
    assert source.state.value == "failed"
    assert "tick 6 exploded" in (source.stats.last_error or "")
    assert offsets.get("ticker", {"counter": "ticker"}) == {"n": 5}
    assert len(await reader.read(topic, 5)) == 5


class _Mixed(Source[SourceConfig]):
    """Answered records: one to a topic the broker refuses, then a good one."""

    requires_event_type = False

    def __init__(self, *, acks: list[asyncio.Future[PublishResult]], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.acks = acks

    async def records(self) -> AsyncIterator[SourceRecord]:
        yield SourceRecord(event=Tick(n=1, label="x" * 2_000_000), ack=self.acks[0])
        yield SourceRecord(event=Tick(n=2), ack=self.acks[1])


async def test_an_answered_record_gets_its_failure_and_the_source_goes_on(
    settings: Settings,
    registry: MemoryRegistry,
    offsets: OffsetStore,
    reader: TopicReader,
    unique_topic: Callable[[str], str],
) -> None:
    topic = unique_topic("ticks")
    loop = asyncio.get_running_loop()
    acks = [loop.create_future(), loop.create_future()]
    source = _Mixed(
        name="mixed", topic=topic, settings=settings, registry=registry, offsets=offsets, acks=acks
    )
    await source.run()
    with pytest.raises(PublishError):
        acks[0].result()
    result = acks[1].result()
    assert result.topic == topic
    assert result.offset == 0
    assert source.stats.errors == 1
    assert source.stats.records == 1
    assert len(await reader.read(topic, 1)) == 1


async def test_a_record_the_broker_refuses_fails_the_run_and_keeps_its_position(
    settings: Settings,
    registry: MemoryRegistry,
    offsets: OffsetStore,
    unique_topic: Callable[[str], str],
) -> None:
    class Refused(Source[SourceConfig]):
        requires_event_type = False

        async def records(self) -> AsyncIterator[SourceRecord]:
            p = {"p": 0}
            yield SourceRecord(event=Tick(n=1), position=SourcePosition(p, {"n": 1}))
            yield SourceRecord(
                event=Tick(n=2, label="x" * 2_000_000), position=SourcePosition(p, {"n": 2})
            )
            yield SourceRecord(event=Tick(n=3), position=SourcePosition(p, {"n": 3}))

    source = Refused(
        name="refused",
        topic=unique_topic("ticks"),
        settings=settings,
        registry=registry,
        offsets=offsets,
    )
    with pytest.raises(PublishError):
        await source.run()
    assert offsets.get("refused", {"p": 0}) == {"n": 1}
