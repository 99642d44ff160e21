"""The Prometheus collector renders the counters the platform keeps (parsed back with the
Prometheus client's own parser)."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from eventplatform.app.stats import AppStats
from eventplatform.connectors.sdk.status import ConnectorState, ConnectorStatus
from eventplatform.errors import ResourceStateError
from eventplatform.observability import events
from eventplatform.observability.metrics import PlatformCollector, require_prometheus


class App:
    name = "billing"
    group_id = "billing-g"

    def __init__(self) -> None:
        self.stats = AppStats(received=7, handled=4, skipped_duplicates=2, dead_lettered=1)
        self.lags = {("orders", 0): 3, ("orders", 1): 0}

    async def lag(self) -> dict[tuple[str, int], int]:
        return dict(self.lags)


class Egress:
    def delivery_outcomes(self) -> dict[tuple[str, str], int]:
        return {("crm", "delivered"): 5, ("crm", "retrying"): 2}


class Runtime:
    def status(self) -> list[ConnectorStatus]:
        return [
            ConnectorStatus(
                name="orders-in",
                type="webhook-ingress",
                role="source",
                state=ConnectorState.RUNNING,
                records=10,
                counters={"duplicates": 1, "rejected": 3, "http_401": 2, "http_422": 1},
            ),
            ConnectorStatus(
                name="crm-out",
                type="webhook-egress",
                role="sink",
                state=ConnectorState.FAILED,
                restarts=2,
                errors=1,
                counters={"delivered": 5, "retries": 2},
            ),
        ]

    def connector(self, name: str) -> Any:
        return Egress() if name == "crm-out" else None


async def scrape(
    collector: PlatformCollector,
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    await collector.refresh()
    text = generate_latest(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    matches = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    assert len(matches) == 1, (name, labels, matches)
    return matches[0]


async def test_an_apps_counters_lag_and_durations_are_exposed() -> None:
    events.time_processing(True)
    try:
        process = events.process_durations()
        assert process is not None
        process.observe(("orders", "billing-g", ""), 0.003)
        process.observe(("orders", "billing-g", "ValueError"), 0.2)
        sends = events.send_durations()
        assert sends is not None
        sends.observe(("invoices", ""), 0.01)
        events.sent({("invoices", ""): 1, ("invoices", "PublishTimeout"): 2})
        samples = await scrape(PlatformCollector(app=App()))
    finally:
        events.time_processing(False)
    assert value(samples, "messaging_client_consumed_messages_total") == 7
    assert value(samples, "eventplatform_app_handled_total") == 4
    assert value(samples, "eventplatform_app_skipped_duplicates_total") == 2
    assert value(samples, "eventplatform_app_dead_lettered_total") == 1
    assert value(samples, "eventplatform_consumer_lag", messaging_destination_partition_id="0") == 3
    assert (
        value(
            samples,
            "messaging_process_duration_seconds_count",
            messaging_destination_name="orders",
            error_type="",
        )
        == 1
    )
    assert (
        value(
            samples,
            "messaging_process_duration_seconds_bucket",
            error_type="ValueError",
            le="0.1",
        )
        == 0
    )
    assert value(samples, "messaging_client_sent_messages_total") == 1
    assert (
        value(
            samples,
            "messaging_client_operation_duration_seconds_count",
            messaging_operation_name="send",
        )
        == 1
    )


async def test_connectors_states_restarts_ingress_answers_and_egress_outcomes() -> None:
    samples = await scrape(PlatformCollector(runtime=Runtime))
    assert (
        value(samples, "eventplatform_connector_state", connector="orders-in", state="running") == 1
    )
    assert (
        value(samples, "eventplatform_connector_state", connector="crm-out", state="running") == 0
    )
    assert value(samples, "eventplatform_connector_state", connector="crm-out", state="failed") == 1
    assert value(samples, "eventplatform_connector_restarts_total", connector="crm-out") == 2
    assert (
        value(samples, "eventplatform_ingress_responses_total", http_response_status_code="202")
        == 11
    )
    assert (
        value(samples, "eventplatform_ingress_responses_total", http_response_status_code="401")
        == 2
    )
    assert (
        value(samples, "eventplatform_egress_deliveries_total", endpoint="crm", outcome="retrying")
        == 2
    )
    assert value(samples, "eventplatform_connector_events_total", counter="rejected") == 3


async def test_a_runtime_not_started_yet_has_no_connector_samples() -> None:
    def not_yet() -> Runtime:
        raise ResourceStateError("not started")

    samples = await scrape(PlatformCollector(runtime=not_yet))
    assert not [name for name, _ in samples if name.startswith("eventplatform_connector")]


def test_without_prometheus_client_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match=r"pip install 'eventplatform\[metrics\]'"):
        require_prometheus()
