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
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Awaitable
from contextvars import ContextVar
from typing import Protocol, TypeVar

__all__ = [
    "DURATION_BUCKETS",
    "SWITCHES",
    "DurationHistogram",
    "ScopedEvent",
    "bind_event",
    "bind_events",
    "current_event",
    "process_durations",
    "send_durations",
    "time_processing",
    "timed_send",
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
        sends: handlers' publish durations by (topic, error type); None: not timed. Read by
            :mod:`eventplatform.app.context` before it times anything.
    """

    __slots__ = ("binding", "process", "sends")

    def __init__(self) -> None:
        self.binding = False
        self.process: DurationHistogram | None = None
        self.sends: DurationHistogram | None = None


#: The switches of this process.
SWITCHES = Switches()


def current_event() -> ScopedEvent | None:
    """The event whose handler is running in this task, None outside a handler call."""
    return _current.get()


def bind_events(enabled: bool = True) -> None:
    """Let :func:`bind_event` set :func:`current_event` (JSON logs turn it on)."""
    SWITCHES.binding = enabled


def time_processing(enabled: bool = True) -> DurationHistogram | None:
    """Time handler calls (:func:`bind_event`) and handlers' publishes (:func:`timed_send`);
    metrics turn it on. The process-duration histogram, or None."""
    if not enabled:
        SWITCHES.process = SWITCHES.sends = None
        return None
    if SWITCHES.process is None:
        SWITCHES.process = DurationHistogram()
    if SWITCHES.sends is None:
        SWITCHES.sends = DurationHistogram()
    return SWITCHES.process


def send_durations() -> DurationHistogram | None:
    """The publish durations, by (topic, error type); None when off."""
    return SWITCHES.sends


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
    started = time.perf_counter()
    error = ""
    try:
        return await call
    except BaseException as exc:
        # error.type: the exception's class name (semconv: low cardinality); a handler cut
        # off by its timeout shows as CancelledError, the way the deadline stops it.
        error = type(exc).__name__
        raise
    finally:
        if durations is not None:
            labels = (event.topic, event.group_id, error)
            durations.observe(labels, time.perf_counter() - started)
        if token is not None:
            _current.reset(token)


def bind_event(event: ScopedEvent, call: Awaitable[R]) -> Awaitable[R]:
    """``call`` (a handler's coroutine for ``event``), run with ``event`` as
    :func:`current_event` and timed into the process-duration histogram (see the module doc).

    While neither JSON logs nor metrics are on, ``call`` itself is returned: nothing is added
    to the handler call.
    """
    switches = SWITCHES
    if not switches.binding and switches.process is None:
        return call
    return _observed(event, call, switches)
