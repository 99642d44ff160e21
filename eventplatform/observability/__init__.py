"""Operating eventplatform: health probes, Prometheus metrics, JSON logs and OpenTelemetry
traces and metrics (DESIGN.md decision 13).

- :mod:`~eventplatform.observability.health`: what ``/health/ready`` checks.
- :mod:`~eventplatform.observability.metrics`: the Prometheus collector (the ``metrics``
  extra), read from the counters the platform keeps.
- :mod:`~eventplatform.observability.events`: the event a handler call is about
  (:func:`bind_event`) and the duration histograms, off unless switched on.
- :mod:`~eventplatform.observability.otel`: OpenTelemetry spans and instruments by the
  messaging conventions v1.45 (the ``otel`` extra), switched on by :func:`instrument`.
- :mod:`~eventplatform.observability.logs`: the JSON log formatter.
- :mod:`~eventplatform.observability.server`: the HTTP server of the probes and metrics.

Instrumentation costs nothing while it is off: metrics are read at scrape time, and the
per-event hooks return at once unless JSON logs, metrics or OpenTelemetry switched them on.
"""

from eventplatform.observability.events import bind_event, current_event, instrument
from eventplatform.observability.health import AppHealth, Check, Readiness
from eventplatform.observability.logs import JsonFormatter

__all__ = [
    "AppHealth",
    "Check",
    "JsonFormatter",
    "Readiness",
    "bind_event",
    "current_event",
    "instrument",
]
