"""The log of the long-running commands (``up``, ``serve``, ``connectors run``): quiet when
all is well.

- aiokafka logs states it recovers from by itself at ERROR or WARNING: a topic that is being
  created is "not found in cluster metadata", a group coordinator that is still being elected
  is "not available", a group that rebalances fails a heartbeat. Every start shows some of
  them, though nothing is wrong. :class:`TransientKafkaStates` demotes exactly those messages to
  DEBUG (shown with ``--log-level DEBUG``); anything else aiokafka says keeps its level, and a
  state that does not recover surfaces as the component's own error (a connector or an app
  that cannot reach Kafka fails, with the reason).
- :func:`report_rate` logs one INFO line per interval while events are being handled
  (``billing: 1520 events in 10 s (152.0/s), 48210 in all``), nothing while idle.
- ``--log-format json`` (or ``EVENTPLATFORM_OBSERVABILITY__LOG_FORMAT=json``):
  :func:`use_log_format` puts :class:`~eventplatform.observability.logs.JsonFormatter` on every
  handler, so stderr holds one JSON object per line, and lets handler calls bind their event
  to the lines they log. The commands' own notices (:func:`notice`) then go through the log
  too, so that no line of stderr is anything but JSON.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Callable
from typing import Literal, TextIO

from rich.markup import escape

from eventplatform.cli._common import err_console
from eventplatform.observability.events import bind_events
from eventplatform.observability.logs import JsonFormatter

__all__ = [
    "LogFormat",
    "TransientKafkaStates",
    "configure_logging",
    "json_logs",
    "notice",
    "quiet_transient_states",
    "report_rate",
    "use_log_format",
]

LogFormat = Literal["text", "json"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: (logger name prefix, message pattern) of the states aiokafka retries by itself.
TRANSIENT: tuple[tuple[str, re.Pattern[str]], ...] = (
    # A topic being created (by `up`, or auto-created on first use) until metadata shows it.
    ("aiokafka.cluster", re.compile(r"^Topic \S+ not found in cluster metadata$")),
    ("aiokafka.consumer.group_coordinator", re.compile(r"^OffsetFetchRequest -- unknown topic")),
    ("aiokafka.coordinator.assignors", re.compile(r"^No partition metadata for topic")),
    # The group coordinator is elected after the broker starts, or moves: aiokafka retries.
    (
        "aiokafka.consumer.group_coordinator",
        re.compile(
            r"^Group Coordinator Request failed: \[Error (14|15|16)\]"
            r"|^Heartbeat failed for group \S+: coordinator \(node \S+\) is either not started"
            r"|^Marking the coordinator dead"
            r"|^Heartbeat failed for group \S+ because it is rebalancing"
        ),
    ),
)


class TransientKafkaStates(logging.Filter):
    """Demotes aiokafka's messages about transient states (see :data:`TRANSIENT`) to DEBUG.

    Args:
        show_debug: pass the demoted records on (as DEBUG) instead of dropping them.
    """

    def __init__(self, *, show_debug: bool = False) -> None:
        super().__init__()
        self.show_debug = show_debug

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a transient-state record unless DEBUG is shown (then it is relabelled)."""
        if record.levelno <= logging.DEBUG or not record.name.startswith("aiokafka"):
            return True
        message = record.getMessage()
        for prefix, pattern in TRANSIENT:
            if record.name.startswith(prefix) and pattern.search(message):
                if not self.show_debug:
                    return False
                record.levelno, record.levelname = logging.DEBUG, "DEBUG"
                return True
        return True


def quiet_transient_states(level: int) -> None:
    """Install :class:`TransientKafkaStates` on every handler of the root logger."""
    noise = TransientKafkaStates(show_debug=level <= logging.DEBUG)
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, TransientKafkaStates)]:
            handler.removeFilter(old)
        handler.addFilter(noise)


def configure_logging(
    level: int, *, stream: TextIO | None = None, log_format: LogFormat = "text"
) -> None:
    """The command's log: ``level`` for eventplatform and the app's own loggers, other
    libraries from WARNING, aiokafka's transient states at DEBUG; text or JSON lines."""
    logging.basicConfig(level=level, stream=stream or sys.stderr, format=FORMAT)
    logging.getLogger("aiokafka").setLevel(max(level, logging.WARNING))
    quiet_transient_states(level)
    use_log_format(log_format)


_format: list[LogFormat] = ["text"]  # this process's log format, set once per command


def use_log_format(log_format: LogFormat) -> None:
    """``json``: every handler of the root logger writes JSON lines, handler calls bind their
    event to what they log, and :func:`notice` logs instead of printing."""
    _format[0] = log_format
    bind_events(log_format == "json")
    if log_format == "json":
        formatter = JsonFormatter()
        for handler in logging.getLogger().handlers:
            handler.setFormatter(formatter)


def json_logs() -> bool:
    """Whether the log is JSON lines (:func:`use_log_format`)."""
    return _format[0] == "json"


def notice(message: str, *, markup: str = "") -> None:
    """A command's own notice on stderr: printed (in ``markup`` style, e.g. ``dim``), or an
    INFO record of ``eventplatform.cli`` when the log is JSON."""
    if json_logs():
        logging.getLogger("eventplatform.cli").info("%s", message)
    elif markup:
        err_console.print(f"[{markup}]{escape(message)}[/]")
    else:
        err_console.print(message, markup=False, highlight=False)


async def report_rate(
    name: str,
    count: Callable[[], int],
    *,
    interval: float = 10.0,
    what: str = "events",
    logger: logging.Logger | None = None,
) -> None:
    """Log ``name: N events in 10 s (R/s), T in all`` at INFO every ``interval`` seconds in
    which ``count()`` grew; runs until cancelled."""
    log = logger or logging.getLogger("eventplatform.rate")
    loop = asyncio.get_running_loop()
    last, since = count(), loop.time()
    while True:
        await asyncio.sleep(interval)
        now, total = loop.time(), count()
        if total > last:
            done = total - last
            log.info(
                "%s: %d %s in %.0f s (%.1f/s), %d in all",
                name,
                done,
                what,
                now - since,
                done / (now - since),
                total,
            )
        last, since = total, now
