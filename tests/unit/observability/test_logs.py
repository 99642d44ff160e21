"""JSON log lines: fields, the event in scope, the current span's ids, no secrets."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    use_span,
)

from eventplatform.observability import events
from eventplatform.observability.events import bind_event, bind_events, current_event
from eventplatform.observability.logs import JsonFormatter
from eventplatform.settings import Settings


@dataclass(frozen=True)
class Meta:
    id: str


@dataclass(frozen=True)
class Scoped:
    metadata: Meta
    topic: str
    partition: int
    offset: int
    group_id: str


EVENT = Scoped(Meta("evt-1"), "orders", 2, 41, "billing")


@pytest.fixture
def log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.observability.json")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    bind_events(True)
    try:
        yield logger, stream
    finally:
        bind_events(False)
        logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_has_time_level_logger_and_message_and_nothing_of_an_event_outside_one(
    log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = log
    logger.warning("billed %s for %d", "o-1", 42)
    (line,) = lines(stream)
    assert line["level"] == "WARNING"
    assert line["logger"] == "tests.observability.json"
    assert line["message"] == "billed o-1 for 42"
    assert isinstance(line["time"], str)
    assert line["time"].endswith("Z")
    assert len(line["time"]) == len("2026-12-06T19:40:01.123Z")
    for absent in ("trace_id", "span_id", "event_id", "topic", "partition", "offset"):
        assert absent not in line


async def test_a_line_logged_in_a_handler_call_carries_the_event(
    log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = log

    async def handler() -> str:
        assert current_event() is EVENT
        logger.info("inside")
        return "done"

    assert await bind_event(EVENT, handler()) == "done"
    assert current_event() is None
    logger.info("after")
    inside, after = lines(stream)
    assert (inside["event_id"], inside["topic"], inside["partition"], inside["offset"]) == (
        "evt-1",
        "orders",
        2,
        41,
    )
    assert inside["group"] == "billing"
    assert "event_id" not in after


async def test_bind_event_adds_nothing_while_logs_and_metrics_are_off() -> None:
    bind_events(False)
    events.time_processing(False)

    async def handler() -> None:
        assert current_event() is None

    call = handler()
    assert bind_event(EVENT, call) is call
    await call


def test_a_line_in_an_active_span_carries_its_trace_and_span_ids(
    log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = log
    context = SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    with use_span(NonRecordingSpan(context)):
        logger.info("traced")
    logger.info("untraced")
    traced, untraced = lines(stream)
    assert traced["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert traced["span_id"] == "00f067aa0ba902b7"
    assert "trace_id" not in untraced


def test_an_exception_is_in_the_line_and_the_line_stays_one_line(
    log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = log
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logger.exception("failed")
    assert len(stream.getvalue().splitlines()) == 1
    (line,) = lines(stream)
    assert "ValueError: bad\nvalue" in str(line["exception"])


def test_settings_logged_whole_show_no_secret(log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = log
    settings = Settings(
        kafka={"bootstrap_servers": "k:9092", "sasl_password": "hunter2-kafka"},
        registry={"password": "hunter2-registry"},
    )
    logger.info("settings: %s", settings)
    logger.info("settings: %r; kafka %s", settings, settings.kafka)
    logger.info("dump: %s", settings.model_dump())
    text = stream.getvalue()
    assert "hunter2" not in text
    assert "**********" in text
    assert len(lines(stream)) == 3
