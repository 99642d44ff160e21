"""One trace from an HTTP request to a webhook delivery, across Kafka twice (issue 15.1).

Everything runs in this process on the real broker: a webhook ingress, an EventApp whose
handler publishes a derived event with ``ctx.publish``, and a webhook egress delivering that
event to a real HTTP receiver on 127.0.0.1. The OpenTelemetry SDK's in-memory exporter and
metric reader see every span and instrument; the test follows the parent span ids from the
client's ``traceparent`` to the delivery's and checks the messaging conventions' (v1.45)
attributes on the way.
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from eventplatform.app import Context, EventApp
from eventplatform.connectors.builtin.egress.connector import WebhookEgress
from eventplatform.connectors.builtin.ingress.connector import WebhookIngress
from eventplatform.observability import events
from eventplatform.observability.otel import Telemetry
from eventplatform.producer import EventProducer
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings, load_settings
from tests.integration.app.helpers import running as running_app
from tests.integration.connectors.helpers import Order, Tick, eventually, order_json, running
from tests.waiting import until

pytestmark = pytest.mark.integration

TRACE_ID = uuid.uuid4().hex
CLIENT_SPAN_ID = os.urandom(8).hex()


@pytest.fixture
def settings(kafka_bootstrap_servers: str) -> Settings:
    """Fast settings: 1 ms linger, short backoffs, a memory idempotency store."""
    return load_settings(
        kafka={"bootstrap_servers": kafka_bootstrap_servers},
        producer={"linger_ms": 1, "delivery_timeout": 15},
        consumer={
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 1000,
            "retry": {"max_attempts": 3, "initial_backoff": 0.01, "max_backoff": 0.05},
        },
        idempotency={"store": "memory://"},
    )


@pytest.fixture
def traced(kafka_bootstrap_servers: str) -> Iterator[tuple[InMemorySpanExporter, Any]]:
    """OpenTelemetry on, into an in-memory span exporter and metric reader; off after."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry = events.instrument(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        bootstrap_servers=kafka_bootstrap_servers,
    )
    assert isinstance(telemetry, Telemetry)
    try:
        yield exporter, reader
    finally:
        events.instrument(False)
        tracer_provider.shutdown()
        meter_provider.shutdown()


class Receiver:
    """A webhook endpoint on 127.0.0.1 that keeps the headers of what it got."""

    def __init__(self) -> None:
        self.got: list[dict[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.got.append(dict(request.headers))
        return web.Response(status=204)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    got = Receiver()
    app = web.Application()
    app.router.add_post("/hook", got.handle)
    got.runner = web.AppRunner(app, access_log=None)
    await got.runner.setup()
    site = web.TCPSite(got.runner, "127.0.0.1", 0)
    await site.start()
    got.url = f"http://127.0.0.1:{got.runner.addresses[0][1]}/hook"
    try:
        yield got
    finally:
        await got.runner.cleanup()


def by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def parent_of(span: ReadableSpan) -> str:
    assert span.parent is not None, span.name
    return f"{span.parent.span_id:016x}"


def span_id(span: ReadableSpan) -> str:
    return f"{span.context.span_id:016x}"


async def test_one_request_is_one_trace_from_ingress_to_egress_delivery(
    settings: Settings,
    unique_topic: Callable[[str], str],
    kafka_bootstrap_servers: str,
    receiver: Receiver,
    traced: tuple[InMemorySpanExporter, Any],
) -> None:
    exporter, reader = traced
    orders, ticks = unique_topic("orders"), unique_topic("ticks")
    group = f"traces-{uuid.uuid4().hex[:8]}"
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    calls: list[int] = []
    async with MemoryRegistry() as registry:
        app = EventApp("traces", group_id=group, settings=settings, registry=registry)

        @app.handle(Order, topic=orders)
        async def handle(event: Order, ctx: Context) -> None:
            calls.append(ctx.attempt)
            if ctx.attempt == 1:
                raise RuntimeError("the first attempt fails, so the second is a retry")
            await ctx.publish(Tick(n=len(event.lines), label=str(event.order_id)), topic=ticks)

        ingress = WebhookIngress(
            name="traced-in",
            topic=orders,
            event_type=Order,
            config={"port": 0, "allow_anonymous": True},
            settings=settings,
            registry=registry,
        )
        egress = WebhookEgress(
            name=f"traced-out-{uuid.uuid4().hex[:8]}",
            topic=ticks,
            config={
                "endpoints": [{"name": "receiver", "url": receiver.url, "secret": secret}],
                "retry_schedule": [0.1],
                "allow_private_addresses": True,
                "state_topic": unique_topic("egress-state"),
                "timeout": 5,
            },
            settings=settings,
            registry=registry,
        )
        async with running(ingress), running_app(app), running(egress):
            client_parent = f"00-{TRACE_ID}-{CLIENT_SPAN_ID}-01"
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    ingress.url, json=order_json(3), headers={"traceparent": client_parent}
                ) as answer,
            ):
                assert answer.status == 202, await answer.text()
                event_id = (await answer.json())["id"]

            async def delivered() -> bool:
                return bool(receiver.got) and any(
                    span.name == "POST" and span.kind is SpanKind.CLIENT
                    for span in exporter.get_finished_spans()
                )

            await eventually(delivered, within=60)

    spans = list(exporter.get_finished_spans())
    assert calls == [1, 2]
    (server,) = by_name(spans, f"POST {ingress.path}")
    (send_in,) = by_name(spans, f"send {orders}")
    failed, retried = sorted(by_name(spans, f"process {orders}"), key=lambda s: s.start_time or 0)
    (send_out,) = by_name(spans, f"send {ticks}")
    (delivery,) = [s for s in by_name(spans, "POST") if s.kind is SpanKind.CLIENT]
    chain = [server, send_in, failed, retried, send_out, delivery]

    # One trace, from the client's traceparent to the delivery, across Kafka twice.
    assert {f"{span.context.trace_id:032x}" for span in chain} == {TRACE_ID}
    assert parent_of(server) == CLIENT_SPAN_ID
    assert parent_of(send_in) == span_id(server)
    assert parent_of(failed) == parent_of(retried) == span_id(send_in)
    assert parent_of(send_out) == span_id(retried)
    assert parent_of(delivery) == span_id(send_out)
    assert send_in.parent is not None
    assert failed.parent is not None
    assert failed.parent.is_remote
    assert not send_in.parent.is_remote
    sent_header = receiver.got[0]["traceparent"]
    assert sent_header == f"00-{TRACE_ID}-{span_id(delivery)}-01"

    kinds = [span.kind for span in chain]
    assert kinds == [
        SpanKind.SERVER,
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
        SpanKind.CONSUMER,
        SpanKind.PRODUCER,
        SpanKind.CLIENT,
    ]
    host, port = kafka_bootstrap_servers.split(",", maxsplit=1)[0].rsplit(":", 1)
    sent = dict(send_in.attributes or {})
    assert sent["messaging.system.name"] == "kafka"
    assert sent["messaging.destination.name"] == orders
    assert sent["messaging.operation.type"] == sent["messaging.operation.name"] == "send"
    assert sent["messaging.message.id"] == event_id
    assert sent["messaging.destination.partition.id"] == "0"
    assert sent["kafka.offset"] == 0
    assert sent["server.address"] == host
    assert sent["server.port"] == int(port)
    processed = dict(retried.attributes or {})
    assert processed["messaging.operation.type"] == "process"
    assert processed["messaging.consumer.group.name"] == group
    assert processed["messaging.message.id"] == event_id
    assert processed["messaging.destination.partition.id"] == "0"
    assert processed["kafka.offset"] == 0
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "RuntimeError"
    assert [e.name for e in retried.events] == ["eventplatform.retry"]
    assert (retried.events[0].attributes or {})["eventplatform.attempt"] == 2
    out = dict(send_out.attributes or {})
    assert out["messaging.destination.name"] == ticks
    assert out["kafka.offset"] == 0
    posted = dict(delivery.attributes or {})
    assert posted["http.response.status_code"] == 204
    assert posted["eventplatform.delivery.outcome"] == "delivered"
    assert posted["url.full"] == receiver.url
    assert (server.attributes or {})["http.response.status_code"] == 202

    # The polls' receive spans: the group's, each with the records it returned.
    receives = by_name(spans, f"receive {orders}")
    assert receives
    assert all((s.attributes or {})["messaging.consumer.group.name"] == group for s in receives)
    assert sum((s.attributes or {})["messaging.batch.message_count"] for s in receives) >= 1

    metrics = metric_points(reader)
    assert metrics["messaging.client.sent.messages"][(orders, "send")] == 1
    assert metrics["messaging.client.sent.messages"][(ticks, "send")] == 1
    assert metrics["messaging.client.consumed.messages"][(orders, "receive")] >= 1
    assert metrics["messaging.process.duration"][(orders, "process")] == 2  # two attempts
    assert metrics["messaging.client.operation.duration"][(orders, "send")] == 1


async def test_a_transactional_handlers_publish_continues_the_trace(
    settings: Settings,
    unique_topic: Callable[[str], str],
    traced: tuple[InMemorySpanExporter, Any],
) -> None:
    """Published inside the poll's Kafka transaction, an event still carries its ``send``
    span's context: the next handler's ``process`` span is in the same trace."""
    exporter, reader = traced
    first, second = unique_topic("tx-in"), unique_topic("tx-out")
    group = f"traces-tx-{uuid.uuid4().hex[:8]}"
    seen: list[int] = []
    async with MemoryRegistry() as registry:
        app = EventApp(
            "traces-tx", group_id=group, settings=settings, registry=registry, instance_id="t-1"
        )

        @app.handle(Tick, topic=first, transactional=True)
        async def relay(event: Tick, ctx: Context) -> None:
            assert await ctx.publish(Tick(n=event.n + 1), topic=second) is None

        @app.handle(Tick, topic=second)
        async def land(event: Tick, ctx: Context) -> None:
            seen.append(event.n)

        async with EventProducer(settings=settings, registry=registry) as producer:
            await producer.publish(
                Tick(n=1), topic=first, traceparent=f"00-{TRACE_ID}-{CLIENT_SPAN_ID}-01"
            )
            async with running_app(app):
                await eventually(
                    lambda: (
                        bool(seen)
                        and bool(by_name(exporter.get_finished_spans(), f"process {second}"))
                    ),
                    within=60,
                )

    spans = list(exporter.get_finished_spans())
    assert seen == [2]
    (send_in,) = by_name(spans, f"send {first}")
    (relayed,) = by_name(spans, f"process {first}")
    (send_out,) = by_name(spans, f"send {second}")
    (landed,) = by_name(spans, f"process {second}")
    chain = [send_in, relayed, send_out, landed]
    assert {f"{span.context.trace_id:032x}" for span in chain} == {TRACE_ID}
    assert parent_of(send_in) == CLIENT_SPAN_ID
    assert parent_of(relayed) == span_id(send_in)
    assert parent_of(send_out) == span_id(relayed)
    assert parent_of(landed) == span_id(send_out)
    out = dict(send_out.attributes or {})
    assert out["messaging.operation.type"] == "send"
    assert out["messaging.destination.name"] == second
    assert out["messaging.message.id"]
    # Counted when the transaction committed.
    assert metric_points(reader)["messaging.client.sent.messages"][(second, "send")] == 1


def metric_points(reader: Any) -> dict[str, dict[tuple[str, str], float]]:
    """Per instrument: the sum (counters) or count (histograms) by destination and operation."""
    found: dict[str, dict[tuple[str, str], float]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points = found.setdefault(metric.name, {})
                for point in metric.data.data_points:
                    attrs = point.attributes
                    key = (
                        str(attrs.get("messaging.destination.name")),
                        str(attrs.get("messaging.operation.name")),
                    )
                    value = getattr(point, "count", None)
                    if value is None:
                        value = point.value
                    points[key] = points.get(key, 0) + value
    return found


async def test_consumer_lag_reaches_an_exporter_collecting_from_its_own_thread(
    settings: Settings,
    unique_topic: Callable[[str], str],
    traced: tuple[InMemorySpanExporter, Any],
) -> None:
    """``eventplatform.consumer.lag`` per partition, as a periodic reader sees it: collected
    on another thread while the app's handler holds its first record (one record per poll),
    the 9 records after it are behind; once they are handled, none is."""
    _, reader = traced
    topic = unique_topic("lag")
    group = f"traces-lag-{uuid.uuid4().hex[:8]}"
    release = asyncio.Event()
    handled: list[int] = []
    settings = settings.model_copy(
        update={"consumer": settings.consumer.model_copy(update={"max_poll_records": 1})}
    )
    async with MemoryRegistry() as registry:
        app = EventApp("traces-lag", group_id=group, settings=settings, registry=registry)

        @app.handle(Tick, topic=topic)
        async def hold(event: Tick, ctx: Context) -> None:
            await release.wait()
            handled.append(event.n)

        async with EventProducer(settings=settings, registry=registry) as producer:
            await producer.publish_batch([Tick(n=n) for n in range(10)], topic=topic)
        telemetry = events.SWITCHES.telemetry
        assert isinstance(telemetry, Telemetry)
        platform = telemetry.platform(app=app)  # on this loop, as `serve` builds it
        try:
            async with running_app(app):
                behind: list[float] = []

                async def lag_from_a_thread() -> bool:
                    points = await asyncio.to_thread(lag_points, reader)
                    behind[:] = [points.get((topic, "0"), -1.0)]
                    return behind == [9.0]

                await until(lag_from_a_thread, within=30, what="a lag of 9 seen from a thread")
                release.set()
                await eventually(lambda: len(handled) == 10, within=30)

                async def caught_up() -> bool:
                    return (await asyncio.to_thread(lag_points, reader)).get((topic, "0")) == 0

                await until(caught_up, within=30, what="a lag of 0 once all were handled")
        finally:
            platform.close()


def lag_points(reader: Any) -> dict[tuple[str, str], float]:
    """``eventplatform.consumer.lag`` by (topic, partition) in one collection."""
    found: dict[tuple[str, str], float] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "eventplatform.consumer.lag":
                    for point in metric.data.data_points:
                        attrs = point.attributes or {}
                        key = (
                            str(attrs["messaging.destination.name"]),
                            str(attrs["messaging.destination.partition.id"]),
                        )
                        found[key] = point.value
    return found
