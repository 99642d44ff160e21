"""The connector runtime against the real broker: several connectors, restarts, statuses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import aiohttp
import pytest

from eventplatform.app import Context
from eventplatform.connectors import (
    Backoff,
    ConnectorRuntime,
    ConnectorSpec,
    ConnectorState,
    Sink,
    SinkConfig,
    Source,
    SourceConfig,
    SourcePosition,
    SourceRecord,
    StatusStore,
)
from eventplatform.connectors.builtin.ingress import WebhookIngress, WebhookIngressConfig
from eventplatform.producer import EventProducer, PublishResult
from eventplatform.registry import MemoryRegistry
from eventplatform.schema import AvroEvent
from eventplatform.settings import Settings
from tests.integration.connectors.helpers import (
    CountingConfig,
    CountingSource,
    Tick,
    eventually,
    free_port,
)

FAST = Backoff(initial=0.1, maximum=0.5, jitter=0)


class FlakyConfig(SourceConfig):
    """Settings of :class:`Flaky`."""

    failures: int = 2


class Flaky(Source[FlakyConfig]):
    """Publishes one tick per start and fails its first ``failures`` runs after it."""

    starts: ClassVar[int] = 0

    async def records(self) -> AsyncIterator[SourceRecord]:
        Flaky.starts += 1
        n = Flaky.starts
        # The framework resolves ``ack`` once the record is durable and its position committed.
        settled: asyncio.Future[PublishResult] = asyncio.get_running_loop().create_future()
        yield SourceRecord(
            event=Tick(n=n),
            event_id=f"flaky-{n}",
            position=SourcePosition({"flaky": 1}, {"n": n}),
            ack=settled,
        )
        if n <= self.config.failures:
            await asyncio.wait_for(settled, 30)  # the record settles first, then the failure
            raise RuntimeError(f"flaky failure {n}")
        while not self.stopping:
            await self.idle(1)


def spec(name: str, cls: type[Any], topic: str, config: Any) -> ConnectorSpec:
    return ConnectorSpec(
        name=name,
        type_name=cls.__name__.lower(),
        connector_class=cls,
        config=config,
        topic=topic,
        event_type=Tick,
    )


async def test_a_failed_connector_is_restarted_with_backoff_and_reported(
    settings: Settings,
    registry: MemoryRegistry,
    offsets_topic: str,
    unique_topic: Callable[[str], str],
) -> None:
    Flaky.starts = 0
    status_topic = unique_topic("status")
    specs = [
        spec("flaky", Flaky, unique_topic("flaky"), FlakyConfig(failures=2)),
        spec("counter", CountingSource, unique_topic("ticks"), CountingConfig(count=25)),
    ]
    runtime = ConnectorRuntime(
        specs,
        settings=settings,
        registry=registry,
        backoff=FAST,
        status_interval=0.2,
        offsets_topic=offsets_topic,
        status_topic=status_topic,
    )
    task = asyncio.create_task(runtime.run())

    async def settled() -> bool:
        by_name = {s.name: s for s in runtime.status()}
        return (
            by_name["flaky"].state is ConnectorState.RUNNING
            and by_name["flaky"].restarts == 2
            and by_name["flaky"].records == 3  # the third start's tick is published too
            and by_name["counter"].state is ConnectorState.STOPPED
        )

    try:
        await eventually(settled)
        flaky, counter = runtime.status()
        assert (flaky.records, flaky.errors) == (3, 2)
        assert "flaky failure 2" in (flaky.last_error or "")
        assert flaky.type == "flaky"
        assert (counter.records, counter.restarts) == (25, 0)
        async with StatusStore(topic=status_topic, settings=settings) as store:

            async def reported() -> bool:
                return [s.restarts for s in await store.read()] == [0, 2]

            await eventually(reported)
    finally:
        runtime.stop()
        await task
    async with StatusStore(topic=status_topic, settings=settings) as store:
        final = {s.name: s for s in await store.read()}
    assert final["flaky"].state is ConnectorState.STOPPED
    assert final["flaky"].records == 3
    assert final["counter"].records == 25


async def test_a_misconfigured_connector_is_not_restarted(
    settings: Settings,
    registry: MemoryRegistry,
    offsets_topic: str,
    unique_topic: Callable[[str], str],
) -> None:
    Flaky.starts = 0
    bad = ConnectorSpec(
        name="bad",
        type_name="counting",
        connector_class=CountingSource,
        config=CountingConfig(),
        topic=None,  # a source with no topic
        event_type=Tick,
    )
    # The marker that a restart would have happened by now: a connector that fails later
    # than ``bad`` (after publishing), with the same backoff, is restarted meanwhile.
    flaky = spec("flaky", Flaky, unique_topic("flaky"), FlakyConfig(failures=1))
    runtime = ConnectorRuntime(
        [bad, flaky],
        settings=settings,
        registry=registry,
        backoff=FAST,
        report_status=False,
        offsets_topic=offsets_topic,
    )
    task = asyncio.create_task(runtime.run())
    try:

        async def failed_and_other_restarted() -> bool:
            status, other = runtime.status()
            return status.state is ConnectorState.FAILED and other.restarts >= 1

        await eventually(failed_and_other_restarted)
        status, _ = runtime.status()
        assert status.restarts == 0
        assert status.next_restart_at is None
        assert "needs a topic" in (status.last_error or "")
    finally:
        runtime.stop()
        await task


class Collected(SinkConfig):
    """Settings of :class:`Collector`."""


class Collector(Sink[Collected]):
    """Keeps what it is delivered."""

    delivered: ClassVar[list[tuple[int, str]]] = []

    async def deliver(self, event: AvroEvent, ctx: Context) -> None:
        assert isinstance(event, Tick)
        Collector.delivered.append((event.n, ctx.metadata.id))


async def test_a_sink_receives_typed_events_through_a_consumer_group(
    settings: Settings,
    registry: MemoryRegistry,
    unique_topic: Callable[[str], str],
    group: str,
) -> None:
    Collector.delivered = []
    topic = unique_topic("ticks")
    sink = Collector(
        name="collector",
        topic=topic,
        event_type=Tick,
        config={"group_id": group, "store": "memory://"},
        settings=settings,
        registry=registry,
    )
    async with EventProducer(settings=settings, registry=registry) as producer:
        for n in range(5):
            await producer.publish(Tick(n=n), topic=topic, event_id=f"tick-{n}")
        # A duplicate of tick 3 (same id): the sink's idempotency store skips it.
        await producer.publish(Tick(n=3), topic=topic, event_id="tick-3")
    task = asyncio.create_task(sink.run())
    try:

        async def all_delivered() -> bool:
            # The duplicate is the last record: once it is skipped, everything was seen.
            health = sink.health()
            return health.records >= 5 and health.counters.get("skipped_duplicates", 0) >= 1

        await eventually(all_delivered, within=30)
    finally:
        sink.stop()
        await task
    assert sorted(Collector.delivered) == [(n, f"tick-{n}") for n in range(5)]
    assert sink.group_id == group
    status = sink.health(type_name="collector")
    assert (status.role, status.records) == ("sink", 5)
    assert status.counters["skipped_duplicates"] == 1


async def test_the_runtime_owns_the_http_server_its_ingresses_share(
    settings: Settings,
    registry: MemoryRegistry,
    offsets_topic: str,
    unique_topic: Callable[[str], str],
) -> None:
    port = free_port()
    specs = [
        ConnectorSpec(
            name=name,
            type_name="webhook-ingress",
            connector_class=WebhookIngress,
            config=WebhookIngressConfig(port=port, allow_anonymous=True),
            topic=unique_topic(name),
            event_type=Tick,
        )
        for name in ("ticks-a", "ticks-b")
    ]
    runtime = ConnectorRuntime(
        specs,
        settings=settings,
        registry=registry,
        report_status=False,
        offsets_topic=offsets_topic,
    )
    task = asyncio.create_task(runtime.run())
    health = f"http://127.0.0.1:{port}/health"
    try:
        async with aiohttp.ClientSession() as http:

            async def both_running() -> bool:
                try:
                    async with http.get(health) as response:
                        body = await response.json()
                except aiohttp.ClientConnectionError:
                    return False
                return response.status == 200 and set(body["connectors"]) == {"ticks-a", "ticks-b"}

            await eventually(both_running)
            for name in ("ticks-a", "ticks-b"):
                connector = runtime.connector(name)
                assert isinstance(connector, WebhookIngress)
                assert connector.url == f"http://127.0.0.1:{port}/hooks/{name}"
                async with http.post(connector.url, json={"n": 1}) as response:
                    assert response.status == 202, await response.text()
            runtime.stop()
            await task
            # Closed with the runtime: nothing listens on the port any more.
            with pytest.raises(aiohttp.ClientConnectionError):
                async with http.get(health):
                    pass
    finally:
        runtime.stop()
        await asyncio.gather(task, return_exceptions=True)
