"""The CLI's log: aiokafka's transient states demoted to DEBUG, the periodic rate line."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from eventplatform.cli._logging import TransientKafkaStates, report_rate


def record(name: str, level: int, message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, args, None)


TRANSIENT = [
    record("aiokafka.cluster", logging.ERROR, "Topic %s not found in cluster metadata", "orders"),
    record(
        "aiokafka.consumer.group_coordinator",
        logging.ERROR,
        "Group Coordinator Request failed: %s",
        "[Error 15] GroupCoordinatorNotAvailableError",
    ),
    record(
        "aiokafka.consumer.group_coordinator",
        logging.WARNING,
        "Marking the coordinator dead (node %s)for group %s.",
        1,
        "billing",
    ),
    record(
        "aiokafka.coordinator.assignors.roundrobin",
        logging.WARNING,
        "No partition metadata for topic %s",
        "orders",
    ),
]
KEPT = [
    record("aiokafka.cluster", logging.ERROR, "Topic %s is not authorized for this client", "x"),
    record(
        "aiokafka.consumer.group_coordinator",
        logging.ERROR,
        "Group Coordinator Request failed: %s",
        "[Error 30] GroupAuthorizationFailedError",
    ),
    record("aiokafka.client", logging.ERROR, 'Unable connect to "%s:%s": %s', "h", 1, "refused"),
    record("eventplatform.app", logging.ERROR, "Topic %s not found in cluster metadata", "x"),
]


@pytest.mark.parametrize("transient", TRANSIENT, ids=lambda r: r.getMessage()[:40])
def test_transient_states_are_dropped_or_shown_as_debug(transient: logging.LogRecord) -> None:
    assert not TransientKafkaStates().filter(transient)
    assert TransientKafkaStates(show_debug=True).filter(transient)
    assert transient.levelno == logging.DEBUG
    assert transient.levelname == "DEBUG"


@pytest.mark.parametrize("kept", KEPT, ids=lambda r: r.getMessage()[:40])
def test_other_messages_keep_their_level(kept: logging.LogRecord) -> None:
    level = kept.levelno
    assert TransientKafkaStates().filter(kept)
    assert kept.levelno == level


async def test_the_rate_line_reports_growth_and_is_silent_when_idle(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handled, readings = [0], [0]

    def count() -> int:
        readings[0] += 1
        return handled[0]

    async def until(condition: Callable[[], bool]) -> None:
        while not condition():  # noqa: ASYNC110 - plain values, no event to wait on
            await asyncio.sleep(0.01)

    caplog.set_level(logging.INFO, logger="eventplatform.rate")
    reporter = asyncio.create_task(report_rate("billing", count, interval=0.05))
    try:
        await asyncio.wait_for(until(lambda: readings[0] == 1), 5)
        handled[0] = 12
        await asyncio.wait_for(until(lambda: bool(caplog.records)), 5)
        seen = readings[0]
        await asyncio.wait_for(until(lambda: readings[0] >= seen + 3), 5)  # idle intervals
    finally:
        reporter.cancel()
    (line,) = caplog.records
    assert line.levelno == logging.INFO
    assert line.getMessage().startswith("billing: 12 events in 0 s (")
    assert line.getMessage().endswith("/s), 12 in all")
