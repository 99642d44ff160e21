"""JSON log lines (``--log-format json``): one object per line, for log pipelines.

::

    {"time": "2026-12-06T19:40:01.123Z", "level": "INFO", "logger": "billing",
     "message": "billed o-17", "trace_id": "4bf92f35…", "span_id": "00f067aa…",
     "event_id": "9b1d…", "topic": "orders", "partition": 2, "offset": 41}

- ``time`` is UTC with milliseconds (RFC 3339); ``level``, ``logger`` and ``message`` are the
  record's (the message with its arguments applied).
- ``trace_id`` and ``span_id`` (lower-case hex, as W3C ``traceparent`` writes them and
  OpenTelemetry's log data model names them) are the current OpenTelemetry span's, when the
  ``opentelemetry-api`` package is installed and a span is active; absent otherwise.
- ``event_id``, ``topic``, ``partition``, ``offset`` (and ``group``) are the event whose
  handler is running (:func:`~eventplatform.observability.events.current_event`); absent
  outside a handler call.
- ``exception`` holds the formatted traceback of a record logged with ``exc_info``.

Secrets: the message is the record's own text, formatted the way the text log formats it;
settings' secrets are :class:`~pydantic.SecretStr`, which print as ``**********`` in ``str``,
``repr`` and dumps alike. The formatter adds no ``extra=`` attributes of its own accord, so
nothing attached to a record reaches the line unless the message names it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from eventplatform.observability.events import current_event

__all__ = ["JsonFormatter", "trace_ids"]


def _no_trace() -> tuple[str, str] | None:
    return None


def _otel_trace_ids() -> Callable[[], tuple[str, str] | None]:
    try:
        from opentelemetry.trace import (  # noqa: PLC0415 - optional
            format_span_id,
            format_trace_id,
            get_current_span,
        )
    except ImportError:
        return _no_trace

    def ids() -> tuple[str, str] | None:
        context = get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return format_trace_id(context.trace_id), format_span_id(context.span_id)

    return ids


#: The current span's (trace id, span id) in hex, or None (no span, or no opentelemetry-api).
trace_ids: Callable[[], tuple[str, str] | None] = _otel_trace_ids()


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line (without the newline)."""
        created = record.created
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
            + f".{int(created % 1 * 1000):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = trace_ids()
        if ids is not None:
            line["trace_id"], line["span_id"] = ids
        event = current_event()
        if event is not None:
            line["event_id"] = event.metadata.id
            line["topic"] = event.topic
            line["partition"] = event.partition
            line["offset"] = event.offset
            line["group"] = event.group_id
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # default=str: a message is text already; this only guards odd values of our own.
        return json.dumps(line, ensure_ascii=False, default=str)
