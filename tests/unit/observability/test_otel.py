"""OpenTelemetry hooks without a broker: the switch, traceparent handling, process spans."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from eventplatform.observability import events
from eventplatform.observability.events import bind_event, instrument, traced
from eventplatform.observability.otel import format_traceparent, parse_traceparent

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@dataclass(frozen=True)
class Meta:
    id: str
    traceparent: str | None = PARENT
    tracestate: str | None = None


@dataclass(frozen=True)
class Handled:
    metadata: Meta
    topic: str = "orders"
    partition: int = 2
    offset: int = 41
    key: bytes | None = b"order-7"
    group_id: str = "billing"
    attempt: int = 1


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    instrument(
        tracer_provider=provider,
        meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
        bootstrap_servers="broker.example:9092,other:9092",
    )
    try:
        yield spans
    finally:
        instrument(False)


def test_traceparent_round_trips_and_malformed_ones_are_refused() -> None:
    context = parse_traceparent(PARENT, "vendor=1")
    assert context is not None
    assert context.is_remote
    assert format_traceparent(context) == PARENT
    assert context.trace_state.get("vendor") == "1"
    for bad in (
        None,
        "",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319X-b7ad6b7169203331-01",
        PARENT + "-extra",
    ):
        assert parse_traceparent(bad) is None, bad


async def test_while_off_a_handler_call_is_passed_through_as_it_is() -> None:
    assert events.SWITCHES.telemetry is None
    assert not events.SWITCHES.handling
    assert not events.SWITCHES.sending

    async def handler() -> None:
        return None

    call = handler()
    assert bind_event(Handled(Meta("e")), call) is call
    await call


async def test_a_handler_call_is_a_process_span_child_of_its_records_traceparent(
    exporter: InMemorySpanExporter,
) -> None:
    assert events.SWITCHES.handling
    assert events.SWITCHES.sending

    async def failing() -> None:
        raise KeyError("missing")

    async def handled() -> None:
        return None

    with pytest.raises(KeyError):
        await bind_event(Handled(Meta("e-1")), failing())
    await bind_event(Handled(Meta("e-1"), attempt=2), handled())
    failed, retried = exporter.get_finished_spans()
    for span in (failed, retried):
        assert span.name == "process orders"
        assert span.kind is SpanKind.CONSUMER
        assert span.parent is not None
        assert format_traceparent(span.parent) == PARENT
        assert span.context.trace_id == span.parent.trace_id
    assert dict(retried.attributes or {}) == {
        "messaging.system.name": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "orders",
        "messaging.consumer.group.name": "billing",
        "messaging.message.id": "e-1",
        "messaging.destination.partition.id": "2",
        "kafka.offset": 41,
        "kafka.message.key": "order-7",
        "server.address": "broker.example",
        "server.port": 9092,
    }
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "KeyError"
    assert [event.name for event in retried.events] == ["eventplatform.retry"]


async def test_a_record_without_trace_context_starts_a_trace_and_binary_keys_are_left_out(
    exporter: InMemorySpanExporter,
) -> None:
    async def handled() -> None:
        return None

    await bind_event(Handled(Meta("e-2", traceparent=None), key=b"\xff\xfe"), handled())
    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    assert "kafka.message.key" not in (span.attributes or {})


def test_traced_blocks_are_spans_only_while_on(exporter: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError, match="refused"), traced("GET", "client", {"a": 1}):
        raise ValueError("refused")
    (span,) = exporter.get_finished_spans()
    assert span.kind is SpanKind.CLIENT
    assert (span.attributes or {})["error.type"] == "ValueError"
    instrument(False)
    with traced("GET", "client", {}):
        pass
    assert len(exporter.get_finished_spans()) == 1
