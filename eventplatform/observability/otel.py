"""OpenTelemetry traces and metrics by the messaging semantic conventions v1.45 (``otel`` extra).

Switched on by :func:`eventplatform.observability.events.instrument` (or the setting
``observability.otel``); while off, this module is not even imported, and every hook in the
platform is one test of ``SWITCHES.telemetry is None``.

Spans (names ``{messaging.operation.name} {destination}``, attributes as v1.45 names them:
``messaging.system.name`` = ``kafka``, ``kafka.offset``, ``kafka.message.key`` -- the
``messaging.kafka.*`` names of v1.44 and before were renamed in v1.45):

============================  ========  ===================================================
span                          kind      where
============================  ========  ===================================================
``send {topic}``              PRODUCER  each ``publish()`` / ingress request's event (its
                                        context goes into the record's ``traceparent``), each
                                        transactional handler's ``ctx.publish`` (ended when
                                        buffered; sent with the poll's transaction), and
                                        one per ``publish_batch`` call, with
                                        ``messaging.batch.message_count``, whose context is
                                        the creation context of the batch's events
``receive {topic}``           CLIENT    each poll that returned records (``getmany``), with
                                        links to, and events for, the records dead-lettered
                                        or skipped as duplicates
``process {topic}``           CONSUMER  each handler call, child of the record's
                                        ``traceparent`` (the single-message case of the
                                        conventions; a root without one), current while the
                                        handler runs, so ``ctx.publish`` continues the trace
``settle {topic}``            CLIENT    each queue acknowledgement (accept/release/reject)
``POST {route}``              SERVER    each ingress request (HTTP server conventions)
``POST``                      CLIENT    each egress delivery attempt (HTTP client
                                        conventions), child of the event's context, its
                                        ``traceparent`` sent to the endpoint
============================  ========  ===================================================

Retries are ``eventplatform.retry`` events on the retrying ``process`` span (and on egress
attempts); dead letters and duplicates skipped are ``eventplatform.dead_letter`` and
``eventplatform.duplicate`` events of the ``receive`` span of their poll.

Metrics (OpenTelemetry instruments of the meter ``eventplatform``, fed by the same hooks as
the Prometheus histograms of :mod:`~eventplatform.observability.events`):
``messaging.client.operation.duration`` (send per send operation: a batch of coalesced
``publish()`` calls as shipped, a ``publish_batch`` call, a relayed batch; receive per poll),
``messaging.client.sent.messages`` (per shipped batch; a transaction's records when it
commits), ``messaging.client.consumed.messages`` (per poll and partition) and
``messaging.process.duration`` (per handler call).

Cost: spans and measurements are the SDK's; what is ours is kept small -- attribute sets are
made once per topic (and group and partition) and copied per span, a record without a
``traceparent`` leaves the parent to the SDK, a handler's parent is the remote context alone
(no copy of the current one), and per-event metrics are the one the conventions ask per
event (``messaging.process.duration``); the rest is recorded per batch or per poll.

W3C ``traceparent`` is parsed and written here by hand (version 00, §3.2 of Trace Context
Level 1): the SDK's propagator builds a carrier dict and runs a regular expression per
record, which is most of what a span costs.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from eventplatform.__about__ import __version__

if TYPE_CHECKING:
    from eventplatform.observability.otel_platform import PlatformMetrics
    from eventplatform.producer import Outgoing, PublishResult

__all__ = ["SCHEMA_URL", "Telemetry", "format_traceparent", "parse_traceparent"]

#: The semantic conventions version the names here follow.
SCHEMA_URL = "https://opentelemetry.io/schemas/1.45.0"

SYSTEM = "messaging.system.name"
DESTINATION = "messaging.destination.name"
OPERATION_TYPE = "messaging.operation.type"
OPERATION_NAME = "messaging.operation.name"
GROUP = "messaging.consumer.group.name"
MESSAGE_ID = "messaging.message.id"
PARTITION = "messaging.destination.partition.id"
BATCH_COUNT = "messaging.batch.message_count"
BODY_SIZE = "messaging.message.body.size"
OFFSET = "kafka.offset"
KEY = "kafka.message.key"
TOMBSTONE = "kafka.message.tombstone"
ERROR_TYPE = "error.type"

#: Bucket bounds (seconds) the conventions advise for their duration histograms.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


def parse_traceparent(value: str | None, state: str | None = None) -> SpanContext | None:
    """The remote span context of a W3C ``traceparent`` (and ``tracestate``); None if invalid."""
    if not value or len(value) < 55 or value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    try:
        version = int(value[:2], 16)
        trace_id = int(value[3:35], 16)
        span_id = int(value[36:52], 16)
        flags = int(value[53:55], 16)
    except ValueError:
        return None
    if version == 0xFF or not trace_id or not span_id or (version == 0 and len(value) != 55):
        return None
    trace_state = TraceState.from_header([state]) if state else None
    return SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags), trace_state=trace_state
    )


def format_traceparent(context: SpanContext) -> str:
    """The W3C ``traceparent`` of ``context`` (version 00)."""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def _key_text(key: str | bytes | None) -> str | None:
    # kafka.message.key: the key's string form, only when it has an unambiguous one.
    if key is None or isinstance(key, str):
        return key
    try:
        return key.decode()
    except UnicodeDecodeError:
        return None


class _Metadata(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def traceparent(self) -> str | None: ...
    @property
    def tracestate(self) -> str | None: ...


class Handled(Protocol):
    """What a ``process`` span needs of the event handled (an app's ``Context`` has it)."""

    @property
    def metadata(self) -> _Metadata: ...
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def group_id(self) -> str: ...
    @property
    def attempt(self) -> int: ...


class _Record(Protocol):
    topic: str
    partition: int
    offset: int


def _server(bootstrap_servers: str | None) -> dict[str, Any]:
    """``server.address``/``server.port`` of the first bootstrap server."""
    first = (bootstrap_servers or "").split(",")[0].strip()
    if not first:
        return {}
    host, _, port = first.rpartition(":")
    if not host or not port.isdigit():
        return {"server.address": first}
    return {"server.address": host.strip("[]"), "server.port": int(port)}


class Telemetry:
    """The tracer, the meter's instruments and the span hooks of this process.

    Args:
        tracer_provider: default the global one (``opentelemetry.trace``).
        meter_provider: default the global one (``opentelemetry.metrics``).
        bootstrap_servers: the cluster, for ``server.address``/``server.port``.
    """

    def __init__(
        self,
        *,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        bootstrap_servers: str | None = None,
    ) -> None:
        self.tracer = trace.get_tracer(
            "eventplatform", __version__, tracer_provider, schema_url=SCHEMA_URL
        )
        self.meter = meter = otel_metrics.get_meter(
            "eventplatform", __version__, meter_provider, schema_url=SCHEMA_URL
        )
        self.operation_duration = meter.create_histogram(
            "messaging.client.operation.duration",
            unit="s",
            description="Duration of messaging operation initiated by a producer or consumer "
            "client.",
            explicit_bucket_boundaries_advisory=_BUCKETS,
        )
        self.process_duration = meter.create_histogram(
            "messaging.process.duration",
            unit="s",
            description="Duration of processing operation.",
            explicit_bucket_boundaries_advisory=_BUCKETS,
        )
        self.sent_messages = meter.create_counter(
            "messaging.client.sent.messages",
            unit="{message}",
            description="Number of messages producer attempted to send to the broker.",
        )
        self.consumed_messages = meter.create_counter(
            "messaging.client.consumed.messages",
            unit="{message}",
            description="Number of messages that were delivered to the application.",
        )
        self.server = _server(bootstrap_servers)
        self._base: dict[str, Any] = {SYSTEM: "kafka", **self.server}
        # Attribute sets made once per topic (or topic, group and partition) and reused: the
        # SDK copies what it is given, so one dict may serve every span and measurement.
        self._send_spans: dict[str, dict[str, Any]] = {}
        self._send_metrics: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]] = {}
        self._process: dict[tuple[str, str, int], tuple[str, dict[str, Any], dict[str, Any]]] = {}

    def platform(self, *, app: Any = None, runtime: Any = None) -> PlatformMetrics:
        """Register the platform's own metrics (app counters, connectors) on the meter
        (:mod:`~eventplatform.observability.otel_platform`); ``close()`` the result when the
        app or runtime is gone."""
        from eventplatform.observability.otel_platform import PlatformMetrics  # noqa: PLC0415

        return PlatformMetrics(self.meter, app=app, runtime=runtime)

    # -- context ---------------------------------------------------------------------------

    @staticmethod
    def parent(traceparent: str | None, tracestate: str | None = None) -> otel_context.Context:
        """The context to start a span in: the current span's, else the remote ``traceparent``."""
        current = otel_context.get_current()
        if trace.get_current_span(current).get_span_context().is_valid:
            return current
        remote = parse_traceparent(traceparent, tracestate)
        if remote is None:
            return current
        return trace.set_span_in_context(NonRecordingSpan(remote), current)

    @staticmethod
    def remote(traceparent: str | None, tracestate: str | None = None) -> otel_context.Context:
        """A context whose span is the remote ``traceparent`` (the current one without it)."""
        remote = parse_traceparent(traceparent, tracestate)
        if remote is None:
            return otel_context.get_current()
        return trace.set_span_in_context(NonRecordingSpan(remote))

    @staticmethod
    def attach(span: Span) -> object:
        """Make ``span`` current; the token for :meth:`detach`."""
        return otel_context.attach(trace.set_span_in_context(span))

    @staticmethod
    def detach(token: object) -> None:
        """Undo :meth:`attach`."""
        otel_context.detach(token)  # type: ignore[arg-type]

    @staticmethod
    def fail(span: Span, exc: BaseException) -> None:
        """Mark ``span`` failed with ``exc`` (``error.type`` = its class name)."""
        name = type(exc).__name__
        span.set_attribute(ERROR_TYPE, name)
        span.set_status(Status(StatusCode.ERROR, f"{name}: {exc}"))
        span.record_exception(exc)

    # -- producing -------------------------------------------------------------------------

    def sending(self, item: Outgoing, topic: str) -> Span:
        """Start the ``send`` span of one event (current context, else its ``traceparent``)
        and put the span's context in ``item.traceparent``."""
        base = self._send_spans.get(topic)
        if base is None:
            base = self._send_spans[topic] = {
                **self._base,
                DESTINATION: topic,
                OPERATION_TYPE: "send",
                OPERATION_NAME: "send",
            }
        attributes = dict(base)
        if item.event_id:
            attributes[MESSAGE_ID] = item.event_id
        key = _key_text(item.key)
        if key is not None:
            attributes[KEY] = key
        # No traceparent of its own: the SDK takes the current context itself.
        parent = self.parent(item.traceparent) if item.traceparent else None
        span = self.tracer.start_span(
            f"send {topic}", parent, SpanKind.PRODUCER, attributes, record_exception=False
        )
        item.traceparent = format_traceparent(span.get_span_context())
        return span

    @staticmethod
    def traceparent_of(span: Span) -> str:
        """The W3C ``traceparent`` of ``span``."""
        return format_traceparent(span.get_span_context())

    def sent(self, span: Span, outcome: PublishResult | BaseException | None) -> None:
        """End a ``send`` span with where its record landed, or why it was not written."""
        if isinstance(outcome, BaseException):
            self.fail(span, outcome)
        elif outcome is not None:
            span.set_attributes({PARTITION: str(outcome.partition), OFFSET: outcome.offset})
        span.end()

    def batch_span(self, topic: str | None, count: int) -> Span:
        """Start the ``send`` span of a ``publish_batch`` call (the creation context of its
        events; not current, so nothing else nests in it)."""
        attributes = {
            **self._base,
            OPERATION_TYPE: "send",
            OPERATION_NAME: "send",
            BATCH_COUNT: count,
        }
        if topic:
            attributes[DESTINATION] = topic
        return self.tracer.start_span(
            f"send {topic}" if topic else "send",
            None,
            SpanKind.PRODUCER,
            attributes,
            record_exception=False,
        )

    def _send_metric_attributes(
        self, topic: str, error: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The attributes of ``operation.duration`` and ``sent.messages`` for (topic, error)."""
        found = self._send_metrics.get((topic, error))
        if found is None:
            sent = {**self._base, OPERATION_NAME: "send", DESTINATION: topic}
            if error:
                sent[ERROR_TYPE] = error
            found = self._send_metrics[(topic, error)] = ({**sent, OPERATION_TYPE: "send"}, sent)
        return found

    def send_duration(self, topic: str, error: str, seconds: float) -> None:
        """Time one send operation (a shipped batch, or a ``publish_batch`` call) into
        ``messaging.client.operation.duration``."""
        self.operation_duration.record(seconds, self._send_metric_attributes(topic, error)[0])

    def sent_messages_of(
        self, counts: Mapping[tuple[str, str], int], seconds: float | None = None
    ) -> None:
        """Count a shipped batch's messages by (topic, error type); with ``seconds``, also
        time the batch as one send operation per (topic, error type)."""
        for (topic, error), count in counts.items():
            timed, attributes = self._send_metric_attributes(topic, error)
            self.sent_messages.add(count, attributes)
            if seconds is not None:
                self.operation_duration.record(seconds, timed)

    # -- consuming -------------------------------------------------------------------------

    def received(
        self, polled: Mapping[Any, Sequence[_Record]], group: str, began: int
    ) -> tuple[Span, int]:
        """Start the ``receive`` span of a poll that began at ``began`` (ns); count its records.

        Returns the span and when the poll returned, for :meth:`poll_done`, which ends it.
        """
        now = time.time_ns()
        topics = {tp.topic for tp in polled}
        count = 0
        for tp, records in polled.items():
            count += len(records)
            self.consumed_messages.add(
                len(records),
                {
                    **self._base,
                    OPERATION_NAME: "receive",
                    DESTINATION: tp.topic,
                    PARTITION: str(tp.partition),
                    GROUP: group,
                },
            )
        attributes = {
            **self._base,
            OPERATION_TYPE: "receive",
            OPERATION_NAME: "receive",
            GROUP: group,
            BATCH_COUNT: count,
        }
        name = "receive"
        if len(topics) == 1:
            (topic,) = topics
            attributes[DESTINATION] = topic
            name = f"receive {topic}"
            if len(polled) == 1:
                (tp,) = polled
                attributes[PARTITION] = str(tp.partition)
        self.operation_duration.record(
            (now - began) / 1e9,
            {k: v for k, v in attributes.items() if k != BATCH_COUNT},
        )
        span = self.tracer.start_span(
            name, otel_context.Context(), SpanKind.CLIENT, attributes, start_time=began
        )
        return span, now

    def poll_done(self, receipt: tuple[Span, int], deliveries: Iterable[Any]) -> None:
        """End a ``receive`` span when its poll returned: an event (and a link) per record
        dead-lettered or skipped as a duplicate."""
        span, ended = receipt
        for d in deliveries:
            outcome = getattr(d.outcome, "value", "")
            if outcome not in ("dead", "duplicate"):
                continue
            record = d.record
            meta = d.metadata
            event = {
                DESTINATION: record.topic,
                PARTITION: str(record.partition),
                OFFSET: record.offset,
            }
            if meta is not None:
                event[MESSAGE_ID] = meta.id
                remote = parse_traceparent(meta.traceparent, meta.tracestate)
                if remote is not None:
                    span.add_link(remote, {"eventplatform.outcome": outcome})
            if outcome == "dead":
                error = d.error
                if error is not None:
                    event[ERROR_TYPE] = type(error).__name__
                event["eventplatform.attempts"] = d.attempts
                span.add_event("eventplatform.dead_letter", event, timestamp=ended)
            else:
                span.add_event("eventplatform.duplicate", event, timestamp=ended)
        span.end(end_time=ended)

    def _process_attributes(
        self, topic: str, group: str, partition: int
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """The span name, span attributes and metric attributes of (topic, group, partition)."""
        found = self._process.get((topic, group, partition))
        if found is None:
            metric = {
                **self._base,
                OPERATION_NAME: "process",
                DESTINATION: topic,
                GROUP: group,
                PARTITION: str(partition),
            }
            found = self._process[(topic, group, partition)] = (
                f"process {topic}",
                {**metric, OPERATION_TYPE: "process"},
                metric,
            )
        return found

    def processing(self, event: Handled) -> Span:
        """Start the ``process`` span of a handler call: a child of the record's
        ``traceparent`` (the conventions' single-message case), a root without one."""
        meta = event.metadata
        name, base, _ = self._process_attributes(event.topic, event.group_id, event.partition)
        attributes = dict(base)
        attributes[MESSAGE_ID] = meta.id
        attributes[OFFSET] = event.offset
        key = _key_text(event.key)
        if key is not None:
            attributes[KEY] = key
        remote = parse_traceparent(meta.traceparent, meta.tracestate)
        parent = (
            _ROOT if remote is None else trace.set_span_in_context(NonRecordingSpan(remote), _ROOT)
        )
        span = self.tracer.start_span(
            name, parent, SpanKind.CONSUMER, attributes, record_exception=False
        )
        if event.attempt > 1:
            span.add_event("eventplatform.retry", {"eventplatform.attempt": event.attempt})
        return span

    def processed(
        self, span: Span, event: Handled, error: BaseException | None, seconds: float
    ) -> None:
        """End a ``process`` span; time the call into ``messaging.process.duration``."""
        attributes = self._process_attributes(event.topic, event.group_id, event.partition)[2]
        if error is not None:
            self.fail(span, error)
            attributes = {**attributes, ERROR_TYPE: type(error).__name__}
        span.end()
        self.process_duration.record(seconds, attributes)

    def settled(self, record: _Record, how: str, group: str, metadata: _Metadata | None) -> None:
        """A ``settle`` span for one queue acknowledgement (``ack``, ``release``, ``reject``)."""
        attributes = {
            **self._base,
            OPERATION_TYPE: "settle",
            OPERATION_NAME: how,
            DESTINATION: record.topic,
            GROUP: group,
            PARTITION: str(record.partition),
            OFFSET: record.offset,
        }
        parent = None
        if metadata is not None:
            attributes[MESSAGE_ID] = metadata.id
            parent = self.parent(metadata.traceparent, metadata.tracestate)
        self.tracer.start_span(f"{how} {record.topic}", parent, SpanKind.CLIENT, attributes).end()

    # -- HTTP ------------------------------------------------------------------------------

    def request(
        self, method: str, route: str, path: str, traceparent: str | None, server: Mapping[str, Any]
    ) -> Span:
        """Start the SERVER span of an ingress request (HTTP server conventions), current."""
        attributes = {
            "http.request.method": method,
            "http.route": route,
            "url.path": path,
            "url.scheme": "http",
            **server,
        }
        return self.tracer.start_span(
            f"{method} {route}",
            self.remote(traceparent),
            SpanKind.SERVER,
            attributes,
            record_exception=False,
        )

    def answered(self, span: Span, status: int) -> None:
        """End an ingress request's span with its status (5xx is an error, as the HTTP
        conventions say of servers)."""
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_attribute(ERROR_TYPE, str(status))
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def delivering(
        self,
        metadata: _Metadata,
        url: Any,
        endpoint: str,
        attempt: int,
        headers: dict[str, str],
    ) -> Span:
        """Start the CLIENT span of an egress attempt, child of the event's context; its
        ``traceparent`` goes into ``headers``. ``url`` is a ``yarl.URL``; its query and
        credentials stay out of the span (they may carry tokens)."""
        attributes: dict[str, Any] = {
            "http.request.method": "POST",
            "server.address": url.host or "",
            "url.full": str(url.with_query(None).with_user(None).with_fragment(None)),
            "eventplatform.endpoint": endpoint,
            MESSAGE_ID: metadata.id,
        }
        if url.port is not None:
            attributes["server.port"] = url.port
        if attempt > 1:
            attributes["http.request.resend_count"] = attempt - 1
        span = self.tracer.start_span(
            "POST",
            self.remote(metadata.traceparent, metadata.tracestate),
            SpanKind.CLIENT,
            attributes,
            record_exception=False,
        )
        headers["traceparent"] = format_traceparent(span.get_span_context())
        if metadata.tracestate:
            headers["tracestate"] = metadata.tracestate
        return span

    def delivered(
        self,
        span: Span,
        outcome: str,
        status: int | None,
        error: BaseException | None,
        retry_in: float | None,
    ) -> None:
        """End an egress attempt's span with its answer and outcome (a retry is an event)."""
        span.set_attribute("eventplatform.delivery.outcome", outcome)
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if error is not None:
            self.fail(span, error)
        elif status is not None and status >= 400:
            span.set_attribute(ERROR_TYPE, str(status))
            span.set_status(Status(StatusCode.ERROR))
        if retry_in is not None:
            span.add_event("eventplatform.retry", {"eventplatform.retry_in": retry_in})
        elif outcome == "dead_lettered":
            span.add_event("eventplatform.dead_letter", {})
        span.end()

    # -- others ------------------------------------------------------------------------------

    def span(self, name: str, kind: str, attributes: Mapping[str, Any]) -> Span:
        """Start a span of ``kind`` (``client``, ``producer``, ``internal``) in the current
        context; the messaging spans' ``messaging.system.name`` and ``server.*`` are added
        when ``attributes`` are messaging ones."""
        if any(name.startswith("messaging.") for name in attributes):
            attributes = {**self._base, **attributes}
        return self.tracer.start_span(name, None, _KINDS[kind], attributes, record_exception=False)


#: The empty context: the parent of spans that start a trace of their own.
_ROOT = otel_context.Context()

_KINDS = {"client": SpanKind.CLIENT, "producer": SpanKind.PRODUCER, "internal": SpanKind.INTERNAL}
