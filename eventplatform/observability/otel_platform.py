"""The platform's own metrics as OpenTelemetry observable instruments (``otel`` extra).

The same counters ``/metrics`` shows in Prometheus form (:mod:`.metrics`), read when the
meter provider's reader collects -- nothing is counted on the way:

=====================================  ===============  ====================================
instrument                             kind             attributes
=====================================  ===============  ====================================
``eventplatform.app.<counter>``        counter          ``eventplatform.app``,
                                                        ``messaging.consumer.group.name``
                                                        (every :class:`~eventplatform.app.
                                                        AppStats` counter: duplicates
                                                        skipped, dead-lettered, retries…)
``eventplatform.connector.state``      gauge            connector, type, state (1: current)
``eventplatform.connector.restarts``   counter          connector, type
``eventplatform.connector.records``    counter          connector, type, role
``eventplatform.connector.errors``     counter          connector, type
``eventplatform.connector.events``     counter          connector, type, counter
``eventplatform.ingress.responses``    counter          connector, ``http.response.status_code``
``eventplatform.egress.deliveries``    counter          connector, endpoint, outcome
``eventplatform.consumer.lag``         gauge            ``messaging.consumer.group.name``,
                                                        ``messaging.destination.name``,
                                                        ``messaging.destination.partition.id``
=====================================  ===============  ====================================

Consumer lag (high watermark minus position, per assigned partition) is read on the event loop
(:meth:`EventApp.lag <eventplatform.app.EventApp.lag>` may ask the consumer for a position). A
periodic reader collects from its own thread: the callback then runs the read on the app's loop
and waits for it up to :data:`LAG_WAIT` seconds. Collected on the loop itself (an in-memory
reader in a test, a flush from a coroutine), it cannot wait there, and observes what the last
read found (:meth:`PlatformMetrics.refresh` reads it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from eventplatform.errors import ResourceStateError
from eventplatform.observability.metrics import _STATES, _ingress_answers

__all__ = ["LAG_WAIT", "PlatformMetrics"]

GROUP = "messaging.consumer.group.name"
#: Seconds a collection from another thread waits for the app's lag to be read on its loop.
LAG_WAIT = 2.0


class PlatformMetrics:
    """Observable instruments over an app, a connector runtime, or both.

    Args:
        meter: the meter to register on.
        app: the :class:`~eventplatform.app.EventApp` of ``serve`` (its ``stats``).
        runtime: returns the connector runtime; None, or raises
            :class:`~eventplatform.errors.ResourceStateError`, before it exists.

    Instruments cannot be removed from a meter: :meth:`close` makes their callbacks observe
    nothing from then on. Built on a running event loop, the consumer lag is read there.
    """

    def __init__(
        self,
        meter: Meter,
        *,
        app: Any = None,
        runtime: Callable[[], Any] | None = None,
    ) -> None:
        self.app = app
        self.runtime = runtime
        self.open = True
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        #: What the last read of the app's consumer lag found.
        self._lag: dict[tuple[str, int], int] = {}
        if app is not None:
            for name in (f.name for f in fields(app.stats)):
                meter.create_observable_counter(
                    f"eventplatform.app.{name}", [self._app_counter(name)], unit="{event}"
                )
            meter.create_observable_gauge(
                "eventplatform.consumer.lag",
                [self._consumer_lag],
                unit="{message}",
                description="Records behind the end of each assigned partition.",
            )
        if runtime is not None:
            gauges = {"eventplatform.connector.state": self._states}
            counters = {
                "eventplatform.connector.restarts": self._restarts,
                "eventplatform.connector.records": self._records,
                "eventplatform.connector.errors": self._errors,
                "eventplatform.connector.events": self._events,
                "eventplatform.ingress.responses": self._responses,
                "eventplatform.egress.deliveries": self._deliveries,
            }
            for name, callback in gauges.items():
                meter.create_observable_gauge(name, [callback])
            for name, callback in counters.items():
                meter.create_observable_counter(name, [callback])

    def close(self) -> None:
        """Observe nothing any more."""
        self.open = False

    async def refresh(self) -> None:
        """Read the app's consumer lag (on its loop), for the next collection."""
        if self.open and self.app is not None:
            self._lag = await self.app.lag()

    # -- the app -----------------------------------------------------------------------------

    def _app_counter(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            app = self.app
            if not self.open or app is None:
                return []
            attributes = {"eventplatform.app": app.name, GROUP: app.group_id}
            return [Observation(getattr(app.stats, name), attributes)]

        return observe

    def _consumer_lag(self, options: CallbackOptions) -> Iterable[Observation]:
        app = self.app
        if not self.open or app is None:
            return []
        loop = self._loop
        if loop is not None and loop.is_running() and not _running(loop):
            read = asyncio.run_coroutine_threadsafe(self.refresh(), loop)
            try:
                read.result(LAG_WAIT)
            except (TimeoutError, asyncio.CancelledError):
                read.cancel()  # observe what the last read found
        return [
            Observation(
                behind,
                {
                    GROUP: app.group_id,
                    "messaging.destination.name": topic,
                    "messaging.destination.partition.id": str(partition),
                },
            )
            for (topic, partition), behind in sorted(self._lag.items())
        ]

    # -- the connectors ------------------------------------------------------------------------

    def _statuses(self) -> tuple[Any, list[Any]]:
        if not self.open or self.runtime is None:
            return None, []
        try:
            runtime = self.runtime()
        except ResourceStateError:  # not started yet
            return None, []
        return (runtime, runtime.status()) if runtime is not None else (None, [])

    def _states(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(
                1 if status.state == state else 0,
                {"connector": status.name, "type": status.type, "state": state},
            )
            for status in self._statuses()[1]
            for state in _STATES
        ]

    def _restarts(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(s.restarts, {"connector": s.name, "type": s.type})
            for s in self._statuses()[1]
        ]

    def _records(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(s.records, {"connector": s.name, "type": s.type, "role": s.role})
            for s in self._statuses()[1]
        ]

    def _errors(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(s.errors, {"connector": s.name, "type": s.type})
            for s in self._statuses()[1]
        ]

    def _events(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(value, {"connector": s.name, "type": s.type, "counter": counter})
            for s in self._statuses()[1]
            for counter, value in sorted(s.counters.items())
        ]

    def _responses(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(value, {"connector": s.name, "http.response.status_code": int(code)})
            for s in self._statuses()[1]
            if s.type == "webhook-ingress"
            for code, value in _ingress_answers(s).items()
        ]

    def _deliveries(self, options: CallbackOptions) -> Iterable[Observation]:
        runtime, statuses = self._statuses()
        found: list[Observation] = []
        for s in statuses:
            outcomes = getattr(runtime.connector(s.name), "delivery_outcomes", None)
            if callable(outcomes):
                found.extend(
                    Observation(value, {"connector": s.name, "endpoint": e, "outcome": o})
                    for (e, o), value in sorted(outcomes().items())
                )
        return found


def _running(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether this thread is running ``loop`` (so it cannot wait for it)."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
