"""Operating eventplatform: health probes, Prometheus metrics and JSON logs (DESIGN.md
decision 13); OpenTelemetry traces will live here too.

- :mod:`~eventplatform.observability.health`: what ``/health/ready`` checks.
- :mod:`~eventplatform.observability.metrics`: the Prometheus collector (the ``metrics``
  extra), read from the counters the platform keeps.
- :mod:`~eventplatform.observability.events`: the event a handler call is about
  (:func:`bind_event`) and the duration histograms, off unless switched on.
- :mod:`~eventplatform.observability.logs`: the JSON log formatter.
- :mod:`~eventplatform.observability.server`: the HTTP server of the probes and metrics.

Instrumentation costs nothing while it is off: metrics are read at scrape time, and the
per-event hooks return at once unless JSON logs or metrics switched them on.
"""

from eventplatform.observability.events import bind_event, current_event
from eventplatform.observability.health import AppHealth, Check, Readiness
from eventplatform.observability.logs import JsonFormatter

__all__ = ["AppHealth", "Check", "JsonFormatter", "Readiness", "bind_event", "current_event"]
