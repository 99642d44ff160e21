"""The platform's own counters as OpenTelemetry observable instruments, read by the SDK's
in-memory reader (the same fakes as the Prometheus collector's tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from eventplatform.errors import ResourceStateError
from eventplatform.observability import events
from eventplatform.observability.otel import Telemetry
from tests.unit.observability.test_metrics import App, Runtime

Points = dict[tuple[str, frozenset[tuple[str, Any]]], float]


def collect(reader: InMemoryMetricReader) -> Points:
    found: Points = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    found[(metric.name, frozenset(point.attributes.items()))] = point.value
    return found


@pytest.fixture
def instrumented() -> Iterator[tuple[Telemetry, InMemoryMetricReader]]:
    """OpenTelemetry on, into an in-memory metric reader; off again after the test."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    telemetry = events.instrument(meter_provider=provider)
    assert telemetry is not None
    try:
        yield telemetry, reader
    finally:
        events.instrument(False)
        provider.shutdown()


def value(points: Points, name: str, **attributes: Any) -> float:
    matches = [v for (n, a), v in points.items() if n == name and set(attributes.items()) <= a]
    assert len(matches) == 1, (name, attributes, matches)
    return matches[0]


def test_app_and_connector_counters_are_observed_when_collected_and_not_after_close(
    instrumented: tuple[Telemetry, InMemoryMetricReader],
) -> None:
    telemetry, reader = instrumented
    app = App()
    platform = telemetry.platform(app=app, runtime=Runtime)
    app.stats.retries = 5  # read at collection, not at registration
    points = collect(reader)
    platform.close()
    after = collect(reader)
    group = {"eventplatform.app": "billing", "messaging.consumer.group.name": "billing-g"}
    assert value(points, "eventplatform.app.skipped_duplicates", **group) == 2
    assert value(points, "eventplatform.app.dead_lettered", **group) == 1
    assert value(points, "eventplatform.app.retries", **group) == 5
    assert value(points, "eventplatform.connector.state", connector="crm-out", state="failed") == 1
    assert value(points, "eventplatform.connector.state", connector="crm-out", state="running") == 0
    assert value(points, "eventplatform.connector.restarts", connector="crm-out") == 2
    assert value(points, "eventplatform.connector.records", connector="orders-in") == 10
    assert value(points, "eventplatform.connector.events", counter="rejected") == 3
    answers = "eventplatform.ingress.responses"
    assert value(points, answers, **{"http.response.status_code": 202}) == 11
    assert value(points, answers, **{"http.response.status_code": 401}) == 2
    assert value(points, "eventplatform.egress.deliveries", outcome="retrying") == 2
    # Closed: nothing new is observed (cumulative points of the gauges are gone).
    assert not [k for k in after if k[0] == "eventplatform.connector.state"]


def test_a_runtime_not_started_yet_is_observed_as_nothing(
    instrumented: tuple[Telemetry, InMemoryMetricReader],
) -> None:
    def not_yet() -> Runtime:
        raise ResourceStateError("not started")

    telemetry, reader = instrumented
    telemetry.platform(runtime=not_yet)
    points = collect(reader)
    assert not [name for name, _ in points if name.startswith("eventplatform.connector")]


async def test_consumer_lag_is_read_on_the_apps_loop_when_a_reader_thread_collects(
    instrumented: tuple[Telemetry, InMemoryMetricReader],
) -> None:
    telemetry, reader = instrumented
    app = App()
    platform = telemetry.platform(app=app)  # built on this loop, as `serve` does
    # A periodic reader collects from its own thread: the lag is read on this loop.
    from_thread = await asyncio.to_thread(collect, reader)
    # Collected on the loop itself, it cannot wait: what the last read found.
    app.lags = {("orders", 0): 9}
    on_loop = collect(reader)
    await platform.refresh()
    refreshed = collect(reader)
    platform.close()
    lag = "eventplatform.consumer.lag"
    where = {"messaging.consumer.group.name": "billing-g", "messaging.destination.name": "orders"}
    assert value(from_thread, lag, **where, **{"messaging.destination.partition.id": "0"}) == 3
    assert value(from_thread, lag, **where, **{"messaging.destination.partition.id": "1"}) == 0
    assert value(on_loop, lag, **where, **{"messaging.destination.partition.id": "0"}) == 3
    assert value(refreshed, lag, **where, **{"messaging.destination.partition.id": "0"}) == 9
    partition_1 = ("messaging.destination.partition.id", "1")
    assert not [k for k in refreshed if k[0] == lag and partition_1 in k[1]]


def test_without_a_loop_the_lag_is_observed_as_nothing_until_read(
    instrumented: tuple[Telemetry, InMemoryMetricReader],
) -> None:
    telemetry, reader = instrumented
    telemetry.platform(app=App())
    points = collect(reader)
    assert not [name for name, _ in points if name == "eventplatform.consumer.lag"]
    assert value(points, "eventplatform.app.retries") == 0
