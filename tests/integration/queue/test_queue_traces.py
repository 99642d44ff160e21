"""Queue acknowledgements are ``settle`` spans in the trace of the job (issue 15.1)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from eventplatform.observability.events import instrument
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings
from tests.integration.queue.events import Job
from tests.integration.queue.helpers import get_within, job_queue

pytestmark = pytest.mark.integration


@pytest.fixture
def exporter(kafka_bootstrap_servers: str) -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    instrument(
        tracer_provider=provider,
        meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
        bootstrap_servers=kafka_bootstrap_servers,
    )
    try:
        yield spans
    finally:
        instrument(False)


async def test_accept_and_release_are_settle_spans_in_the_jobs_trace(
    settings: Settings,
    registry: MemoryRegistry,
    topic: str,
    group: str,
    exporter: InMemorySpanExporter,
) -> None:
    async with job_queue(settings, registry, topic, group) as queue:
        await queue.put(Job(job_id="traced"))
        item = await get_within(queue)
        await item.release()
        again = await get_within(queue)
        await again.task_done()
    spans = exporter.get_finished_spans()
    (sent,) = [s for s in spans if s.name == f"send {topic}"]
    settles = [s for s in spans if (s.attributes or {}).get("messaging.operation.type") == "settle"]
    assert [s.name for s in settles] == [f"release {topic}", f"accept {topic}"]
    for span in settles:
        attributes = dict(span.attributes or {})
        assert span.kind is SpanKind.CLIENT
        assert span.context.trace_id == sent.context.trace_id
        assert span.parent is not None
        assert span.parent.span_id == sent.context.span_id
        assert attributes["messaging.consumer.group.name"] == group
        assert attributes["messaging.message.id"] == item.metadata.id
        assert attributes["kafka.offset"] == item.record.offset
        assert attributes["messaging.system.name"] == "kafka"
