"""The event a handler call is about, for log lines and the process-duration histogram.

The consumption loop passes every handler call through :func:`bind_event` (one line in
:mod:`eventplatform.app.dispatch`)::

    async with deadline:
        await bind_event(ctx, route.handler(event, ctx))

While the call runs, :func:`current_event` gives the handler's
:class:`~eventplatform.app.Context`, so a JSON log line written anywhere below it (the
handler's own ``log.info``, a publish) carries the event's id, topic, partition and offset
(:mod:`eventplatform.observability.logs`); a ``contextvars`` variable, so concurrent handlers of
one poll each see their own. When metrics are on, the call's duration also goes into
``messaging_process_duration_seconds`` (OpenTelemetry's ``messaging.process.duration``).

Both are switched on by the command that runs the app (``--log-format json``, ``--health-port``
with metrics); when neither is, :func:`bind_event` hands the handler's coroutine back as it
is: no context variable is set, no clock is read, no coroutine is added per event.

OpenTelemetry (:func:`instrument`, the ``otel`` extra) is fed by the same hooks: the handler
call's ``process`` span and ``messaging.process.duration``, and, through
:func:`send_started`/:func:`send_finished`/:func:`sent` (called by the producer's coalescer
and ``publish_batch`` for every publish), the ``send`` spans and the send metrics of both
exporters. One place, two exporters; each hook tests one switch while everything is off.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Awaitable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from eventplatform.errors import ConfigurationError

if TYPE_CHECKING:
    from eventplatform.observability.otel import Telemetry
    from eventplatform.producer import Outgoing, PublishResult

__all__ = [
    "DURATION_BUCKETS",
    "SWITCHES",
    "DurationHistogram",
    "ScopedEvent",
    "batch_finished",
    "bind_event",
    "bind_events",
    "current_event",
    "instrument",
    "process_durations",
    "send_durations",
    "send_finished",
    "send_started",
    "sent",
    "sent_counts",
    "time_processing",
    "timed_send",
    "traced",
]

R = TypeVar("R")

#: Bucket bounds (seconds) OpenTelemetry's messaging conventions advise for their durations.
DURATION_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)


class _Identified(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def traceparent(self) -> str | None: ...
    @property
    def tracestate(self) -> str | None: ...


class ScopedEvent(Protocol):
    """What a log line needs of the event being handled (an app's ``Context`` has it)."""

    @property
    def metadata(self) -> _Identified: ...
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def group_id(self) -> str: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def attempt(self) -> int: ...


class DurationHistogram:
    """Cumulative-bucket histograms of durations, one per label tuple; read at scrape time.

    Cheaper than a ``prometheus_client.Histogram`` per observation (no lock, no label
    lookup object): one dict lookup and one bisect. Not thread-safe; the event loop's
    thread is the only writer.
    """

    __slots__ = ("buckets", "series")

    def __init__(self, buckets: tuple[float, ...] = DURATION_BUCKETS) -> None:
        self.buckets = buckets
        #: labels → [per-bucket counts (the last one is +Inf), sum]
        self.series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, labels: tuple[str, ...], seconds: float) -> None:
        """Count one duration under ``labels``."""
        entry = self.series.get(labels)
        if entry is None:
            entry = self.series[labels] = ([0] * (len(self.buckets) + 1), [0.0])
        entry[0][bisect_left(self.buckets, seconds)] += 1
        entry[1][0] += seconds

    def snapshot(self) -> list[tuple[tuple[str, ...], list[tuple[str, int]], float]]:
        """Per label tuple: cumulative ``(le, count)`` buckets ending with ``+Inf``, and the sum."""
        out = []
        bounds = [*(format(b, "g") for b in self.buckets), "+Inf"]
        for labels, (counts, total) in self.series.items():
            running, cumulative = 0, []
            for bound, count in zip(bounds, counts, strict=True):
                running += count
                cumulative.append((bound, running))
            out.append((labels, cumulative, total[0]))
        return out


_current: ContextVar[ScopedEvent | None] = ContextVar("eventplatform_event", default=None)


class Switches:
    """What the per-event hooks do; everything off by default.

    Attributes:
        binding: :func:`bind_event` sets :func:`current_event` (JSON logs).
        process: handler-call durations by (topic, group, error type); None: not timed.
        sends: publish durations by (topic, error type), one per ``publish()`` call or
            ``publish_batch`` call; None: not timed.
        sent: messages sent by (topic, error type), while ``sends`` is on.
        telemetry: the OpenTelemetry tracer and instruments; None: off.
        handling: any per-handler-call hook is on (the one test :func:`bind_event` makes).
        sending: any per-publish hook is on (the one test the producer makes per call).
    """

    __slots__ = ("binding", "handling", "process", "sending", "sends", "sent", "telemetry")

    def __init__(self) -> None:
        self.binding = False
        self.process: DurationHistogram | None = None
        self.sends: DurationHistogram | None = None
        self.sent: dict[tuple[str, str], int] = {}
        self.telemetry: Telemetry | None = None
        self.handling = False
        self.sending = False

    def refresh(self) -> None:
        """Recompute :attr:`handling` and :attr:`sending` after a switch changed."""
        on = self.telemetry is not None
        self.handling = self.binding or self.process is not None or on
        self.sending = self.sends is not None or on


#: The switches of this process.
SWITCHES = Switches()


def current_event() -> ScopedEvent | None:
    """The event whose handler is running in this task, None outside a handler call."""
    return _current.get()


def bind_events(enabled: bool = True) -> None:
    """Let :func:`bind_event` set :func:`current_event` (JSON logs turn it on)."""
    SWITCHES.binding = enabled
    SWITCHES.refresh()


def instrument(
    enabled: bool = True,
    *,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    bootstrap_servers: str | None = None,
) -> Telemetry | None:
    """Switch OpenTelemetry traces and metrics on (or off); the :class:`Telemetry`, or None.

    Args:
        enabled: False switches them off again.
        tracer_provider, meter_provider: default the global providers of
            ``opentelemetry.trace`` and ``opentelemetry.metrics`` (configured by the SDK or
            ``opentelemetry-instrument``).
        bootstrap_servers: the cluster, for the spans' ``server.address``/``server.port``.

    Raises:
        ConfigurationError: ``opentelemetry-api`` is not installed (the message says what to
            install).
    """
    if not enabled:
        SWITCHES.telemetry = None
        SWITCHES.refresh()
        return None
    try:
        from eventplatform.observability.otel import Telemetry  # noqa: PLC0415 - optional
    except ImportError as exc:
        raise ConfigurationError(
            f"OpenTelemetry is not installed ({exc}): pip install 'eventplatform[otel]'"
        ) from exc
    SWITCHES.telemetry = Telemetry(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        bootstrap_servers=bootstrap_servers,
    )
    SWITCHES.refresh()
    return SWITCHES.telemetry


def time_processing(enabled: bool = True) -> DurationHistogram | None:
    """Time handler calls (:func:`bind_event`) and handlers' publishes (:func:`timed_send`);
    metrics turn it on. The process-duration histogram, or None."""
    if not enabled:
        SWITCHES.process = SWITCHES.sends = None
        SWITCHES.sent = {}
        SWITCHES.refresh()
        return None
    if SWITCHES.process is None:
        SWITCHES.process = DurationHistogram()
    if SWITCHES.sends is None:
        SWITCHES.sends = DurationHistogram()
    SWITCHES.refresh()
    return SWITCHES.process


def send_durations() -> DurationHistogram | None:
    """The publish durations, by (topic, error type); None when off."""
    return SWITCHES.sends


def sent_counts() -> dict[tuple[str, str], int]:
    """Messages sent, by (topic, error type), since metrics were switched on."""
    return SWITCHES.sent


class Sending:
    """One publish call in flight: when it started, and its ``send`` span (if traced).

    Attributes:
        traceparent: the span's W3C ``traceparent`` (a batch's events carry it), or None.
        batch: a batch call (one send operation of its own); a single event's call is
            coalesced with others into one, timed by :func:`sent`.
    """

    __slots__ = ("batch", "span", "started", "topic", "traceparent")

    def __init__(
        self, topic: str, span: Any, traceparent: str | None = None, *, batch: bool = False
    ) -> None:
        self.topic = topic
        self.span = span
        self.traceparent = traceparent
        self.batch = batch
        self.started = time.perf_counter()


def send_started(item: Outgoing | None, topic: str, count: int = 1) -> Sending:
    """A publish call of ``item`` to ``topic`` begins (``item`` None: a ``publish_batch`` of
    ``count`` events). Traced, its ``send`` span starts and, for one item, becomes its
    creation context (``item.traceparent``). Call only while ``SWITCHES.sending``."""
    telemetry = SWITCHES.telemetry
    if item is not None:
        return Sending(topic, None if telemetry is None else telemetry.sending(item, topic))
    if telemetry is None:
        return Sending(topic, None, batch=True)
    span = telemetry.batch_span(topic, count)
    return Sending(topic, span, telemetry.traceparent_of(span), batch=True)


def send_finished(sending: Sending, outcome: PublishResult | BaseException | None) -> None:
    """A publish call ended with ``outcome`` (None: a batch that was written): time it, end
    its span. OpenTelemetry's ``messaging.client.operation.duration`` times send operations:
    a batch call here, a single event's call with its coalesced batch (:func:`sent`)."""
    seconds = time.perf_counter() - sending.started
    error = type(outcome).__name__ if isinstance(outcome, BaseException) else ""
    durations = SWITCHES.sends
    if durations is not None:
        durations.observe((sending.topic, error), seconds)
    telemetry = SWITCHES.telemetry
    if telemetry is not None:
        if sending.span is not None:
            telemetry.sent(sending.span, outcome)
        if sending.batch:
            telemetry.send_duration(sending.topic, error, seconds)


def batch_finished(sending: Sending, outcomes: Sequence[PublishResult | BaseException]) -> None:
    """A batch publish call ended: time it and end its span (with its first error, if any),
    count its messages by (topic, error type)."""
    counts: dict[tuple[str, str], int] = {}
    failure: BaseException | None = None
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            failure = failure or outcome
            labels = (sending.topic, type(outcome).__name__)
        else:
            labels = (outcome.topic, "")
        counts[labels] = counts.get(labels, 0) + 1
    send_finished(sending, failure)
    sent(counts)


@contextmanager
def traced(name: str, kind: str, attributes: dict[str, Any]) -> Iterator[None]:
    """A span around the block (``kind``: ``client``, ``producer`` or ``internal``), current
    inside it, failed with what the block raises; nothing at all while OpenTelemetry is off.

    For calls that are not per event (registry requests, outbox rounds).
    """
    telemetry = SWITCHES.telemetry
    if telemetry is None:
        yield
        return
    span = telemetry.span(name, kind, attributes)
    scope = telemetry.attach(span)
    try:
        yield
    except BaseException as exc:
        telemetry.fail(span, exc)
        raise
    finally:
        telemetry.detach(scope)
        span.end()


def sent(counts: dict[tuple[str, str], int], seconds: float | None = None) -> None:
    """Count messages sent by (topic, error type) -- one call per shipped batch; ``seconds``:
    the batch was one send operation of the coalesced calls, this long (OpenTelemetry)."""
    if SWITCHES.sends is not None:
        totals = SWITCHES.sent
        for labels, count in counts.items():
            totals[labels] = totals.get(labels, 0) + count
    telemetry = SWITCHES.telemetry
    if telemetry is not None:
        telemetry.sent_messages_of(counts, seconds)


async def timed_send(sending: Awaitable[R], topic: str | None) -> R:
    """Await ``sending`` (a publish that returns a ``PublishResult``) and time it into
    ``SWITCHES.sends`` under its topic (``topic``, or the result's) and error type."""
    durations = SWITCHES.sends
    started = time.perf_counter()
    try:
        result = await sending
    except BaseException as exc:
        if durations is not None:
            durations.observe((topic or "", type(exc).__name__), time.perf_counter() - started)
        raise
    if durations is not None:
        landed = getattr(result, "topic", None) or topic or ""
        durations.observe((landed, ""), time.perf_counter() - started)
    return result


def process_durations() -> DurationHistogram | None:
    """The handler-call durations, by (topic, consumer group, error type); None when off."""
    return SWITCHES.process


async def _observed(event: ScopedEvent, call: Awaitable[R], switches: Switches) -> R:
    token = _current.set(event) if switches.binding else None
    durations = switches.process
    telemetry = switches.telemetry
    span: Any = None
    scope: object = None
    if telemetry is not None:
        span = telemetry.processing(event)
        scope = telemetry.attach(span)
    started = time.perf_counter()
    failure: BaseException | None = None
    try:
        return await call
    except BaseException as exc:
        # error.type: the exception's class name (semconv: low cardinality); a handler cut
        # off by its timeout shows as CancelledError, the way the deadline stops it.
        failure = exc
        raise
    finally:
        seconds = time.perf_counter() - started
        if durations is not None:
            error = type(failure).__name__ if failure is not None else ""
            durations.observe((event.topic, event.group_id, error), seconds)
        if telemetry is not None:
            telemetry.detach(scope)
            telemetry.processed(span, event, failure, seconds)
        if token is not None:
            _current.reset(token)


def bind_event(event: ScopedEvent, call: Awaitable[R]) -> Awaitable[R]:
    """``call`` (a handler's coroutine for ``event``), run with ``event`` as
    :func:`current_event` and timed into the process-duration histogram (see the module doc).

    While neither JSON logs, metrics nor OpenTelemetry are on, ``call`` itself is returned:
    nothing is added to the handler call.
    """
    switches = SWITCHES
    if not switches.handling:
        return call
    return _observed(event, call, switches)
