"""Prometheus metrics, read at scrape time from the counters the platform keeps anyway.

Nothing is counted for Prometheus on the way: :class:`PlatformCollector` turns
:class:`~eventplatform.app.AppStats`, the connectors' statuses and the egress endpoints'
outcome counts into metric families when ``/metrics`` is scraped. The only per-event work is
the duration histograms (:mod:`eventplatform.observability.events`), switched on with metrics.

OpenTelemetry messaging semantic conventions (v1.45) in Prometheus form, where they apply
(``messaging.client.consumed.messages`` → ``messaging_client_consumed_messages_total``, the
attributes' dots → underscores):

=====================================================  =====================================
``messaging_client_consumed_messages_total``           records an app polled
``messaging_client_sent_messages_total``               handlers' ``ctx.publish`` (acknowledged)
``messaging_client_operation_duration_seconds``        ``send`` of handlers' publishes
``messaging_process_duration_seconds``                 handler calls, by topic and error type
=====================================================  =====================================

The platform's own (``eventplatform_``): every :class:`~eventplatform.app.AppStats` counter as
``eventplatform_app_<name>_total`` (``skipped_duplicates``, ``dead_lettered``, ``retries``…),
``eventplatform_consumer_lag`` per partition (high watermark minus position, at scrape time),
``eventplatform_connector_state`` (1 for the current state), ``…_restarts_total``,
``…_records_total``, ``…_errors_total``, the connectors' own counters
(``eventplatform_connector_events_total{counter=…}``), ``eventplatform_ingress_responses_total``
by HTTP status, and ``eventplatform_egress_deliveries_total`` by endpoint and outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from eventplatform.errors import ResourceStateError
from eventplatform.observability import events

if TYPE_CHECKING:
    from eventplatform.app.stats import AppStats
    from eventplatform.connectors.sdk.status import ConnectorStatus

__all__ = ["PlatformCollector", "require_prometheus"]

SYSTEM = "kafka"
_STATES = ("new", "starting", "running", "stopping", "stopped", "failed")


def require_prometheus() -> ModuleType:
    """The ``prometheus_client`` module.

    Raises:
        ImportError: it is not installed; the message says what to install.
    """
    try:
        import prometheus_client  # noqa: PLC0415 - an optional extra
        import prometheus_client.core  # noqa: PLC0415 - the metric families
    except ImportError as exc:
        raise ImportError(
            "Prometheus metrics need prometheus-client: pip install 'eventplatform[metrics]'"
        ) from exc
    return prometheus_client


class _App(Protocol):
    name: str
    group_id: str

    @property
    def stats(self) -> AppStats: ...

    async def lag(self) -> dict[tuple[str, int], int]: ...


class _Runtime(Protocol):
    def status(self) -> list[ConnectorStatus]: ...

    def connector(self, name: str) -> Any: ...


class PlatformCollector:
    """A ``prometheus_client`` collector over an app, a connector runtime, or both.

    Args:
        app: the :class:`~eventplatform.app.EventApp` of ``serve``.
        runtime: returns the connector runtime (``connectors run``, ``up``); None, or raises
            :class:`~eventplatform.errors.ResourceStateError`, before it exists.

    Call :meth:`refresh` before a scrape: it reads the consumer lag, which needs the event
    loop (``collect`` runs synchronously inside ``generate_latest``).
    """

    def __init__(
        self,
        *,
        app: _App | None = None,
        runtime: Callable[[], _Runtime | None] | None = None,
    ) -> None:
        self.app = app
        self.runtime = runtime
        self._lag: dict[tuple[str, int], int] = {}
        self._core = require_prometheus().core

    async def refresh(self) -> None:
        """Read what can only be read asynchronously (the app's consumer lag)."""
        self._lag = await self.app.lag() if self.app is not None else {}

    def collect(self) -> Iterator[Any]:
        """The metric families (called by ``prometheus_client`` at each scrape)."""
        yield from self._messaging()
        if self.app is not None:
            yield from self._app(self.app)
        try:
            runtime = self.runtime() if self.runtime is not None else None
        except ResourceStateError:  # not started yet
            runtime = None
        if runtime is not None:
            yield from self._connectors(runtime)

    # -- OpenTelemetry messaging conventions ---------------------------------------------------

    def _messaging(self) -> Iterator[Any]:
        core = self._core
        group = self.app.group_id if self.app is not None else ""
        consumed = core.CounterMetricFamily(
            "messaging_client_consumed_messages",
            "Records delivered to the app by its consumer (messaging.client.consumed.messages).",
            labels=["messaging_system", "messaging_consumer_group_name"],
        )
        if self.app is not None:
            consumed.add_metric([SYSTEM, group], self.app.stats.received)
        yield consumed

        sends = events.send_durations()
        sent = core.CounterMetricFamily(
            "messaging_client_sent_messages",
            "Events published through the producer and acknowledged by the broker "
            "(messaging.client.sent.messages).",
            labels=["messaging_system", "messaging_destination_name"],
        )
        operation = core.HistogramMetricFamily(
            "messaging_client_operation_duration_seconds",
            "Duration of publish calls until acknowledged (messaging.client.operation.duration).",
            labels=[
                "messaging_system",
                "messaging_operation_name",
                "messaging_destination_name",
                "error_type",
            ],
            unit="seconds",
        )
        for (topic, error), buckets, total in sends.snapshot() if sends is not None else ():
            operation.add_metric([SYSTEM, "send", topic, error], buckets, total)
        for (topic, error), count in events.sent_counts().items():
            if not error:
                sent.add_metric([SYSTEM, topic], count)
        yield sent
        yield operation

        durations = events.process_durations()
        process = core.HistogramMetricFamily(
            "messaging_process_duration_seconds",
            "Duration of handler calls (messaging.process.duration).",
            labels=[
                "messaging_system",
                "messaging_operation_name",
                "messaging_destination_name",
                "messaging_consumer_group_name",
                "error_type",
            ],
            unit="seconds",
        )
        for (topic, group_id, error), buckets, total in (
            durations.snapshot() if durations is not None else ()
        ):
            process.add_metric([SYSTEM, "process", topic, group_id, error], buckets, total)
        yield process

    # -- apps ------------------------------------------------------------------------------------

    def _app(self, app: _App) -> Iterator[Any]:
        core = self._core
        labels = ["app", "messaging_consumer_group_name"]
        values = [app.name, app.group_id]
        for name, value in app.stats.as_dict().items():
            family = core.CounterMetricFamily(
                f"eventplatform_app_{name}", _APP_HELP.get(name, name), labels=labels
            )
            family.add_metric(values, value)
            yield family
        lag = core.GaugeMetricFamily(
            "eventplatform_consumer_lag",
            "Records behind the partition's end: high watermark minus the consumer's position.",
            labels=[
                "messaging_consumer_group_name",
                "messaging_destination_name",
                "messaging_destination_partition_id",
            ],
        )
        for (topic, partition), behind in sorted(self._lag.items()):
            lag.add_metric([app.group_id, topic, str(partition)], behind)
        yield lag

    # -- connectors ----------------------------------------------------------------------------

    def _connectors(self, runtime: _Runtime) -> Iterator[Any]:
        core = self._core
        statuses = runtime.status()
        labels = ["connector", "type"]
        state = core.GaugeMetricFamily(
            "eventplatform_connector_state",
            "1 for the connector's current state, 0 for the others.",
            labels=[*labels, "state"],
        )
        restarts = core.CounterMetricFamily(
            "eventplatform_connector_restarts",
            "Restarts of a failed connector by its runtime.",
            labels=labels,
        )
        records = core.CounterMetricFamily(
            "eventplatform_connector_records",
            "Records published (sources) or events delivered (sinks).",
            labels=[*labels, "role"],
        )
        errors = core.CounterMetricFamily(
            "eventplatform_connector_errors",
            "Records, requests or lines that failed.",
            labels=labels,
        )
        counters = core.CounterMetricFamily(
            "eventplatform_connector_events",
            "A connector's own counts (rejected, duplicates, dead_lettered, retries…).",
            labels=[*labels, "counter"],
        )
        responses = core.CounterMetricFamily(
            "eventplatform_ingress_responses",
            "Webhook ingress answers by HTTP status (202: events accepted, replays included).",
            labels=["connector", "http_response_status_code"],
        )
        deliveries = core.CounterMetricFamily(
            "eventplatform_egress_deliveries",
            "Webhook egress delivery attempts by endpoint and outcome (since the connector's "
            "last start).",
            labels=["connector", "endpoint", "outcome"],
        )
        for status in statuses:
            values = [status.name, status.type]
            for name in _STATES:
                state.add_metric([*values, name], 1.0 if status.state == name else 0.0)
            restarts.add_metric(values, status.restarts)
            records.add_metric([*values, status.role], status.records)
            errors.add_metric(values, status.errors)
            for counter, value in sorted(status.counters.items()):
                counters.add_metric([*values, counter], value)
            if status.type == "webhook-ingress":
                for code, value in _ingress_answers(status).items():
                    responses.add_metric([status.name, code], value)
            outcomes = getattr(runtime.connector(status.name), "delivery_outcomes", None)
            if callable(outcomes):
                for (endpoint, outcome), value in sorted(outcomes().items()):
                    deliveries.add_metric([status.name, endpoint, outcome], value)
        yield from (state, restarts, records, errors, counters, responses, deliveries)


def _ingress_answers(status: ConnectorStatus) -> dict[str, int]:
    """HTTP status → answers, from an ingress's counters (``http_<code>``) and records."""
    answers = {"202": status.records + status.counters.get("duplicates", 0)}
    for counter, value in status.counters.items():
        if counter.startswith("http_") and counter[5:].isdigit():
            answers[counter[5:]] = answers.get(counter[5:], 0) + value
    return answers


_APP_HELP = {
    "polls": "Non-empty polls processed.",
    "received": "Records polled.",
    "handled": "Events whose handler returned.",
    "skipped": "Events whose handler raised SkipEvent.",
    "skipped_duplicates": "Events skipped as duplicates: their idempotency key was done.",
    "unhandled": "Records of a type no handler takes (skipped).",
    "dead_lettered": "Records written to a dead-letter topic.",
    "retries": "Handler attempts after the first.",
    "deferred": "Events left for a later poll.",
    "commits": "Successful offset commits (and Kafka transactions).",
    "commit_failures": "Offset commits refused or failed.",
    "rebalances": "Partition assignments received.",
    "connection_errors": "Polls, publishes and commits that failed on the connection.",
    "store_errors": "Batches the idempotency store failed.",
    "transactions_aborted": "Kafka transactions aborted (their batch was redone).",
}
