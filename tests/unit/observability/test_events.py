"""The duration histograms and the timing of handler calls and publishes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from eventplatform.observability import events
from eventplatform.observability.events import DurationHistogram, bind_event, timed_send


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


@dataclass(frozen=True)
class Landed:
    topic: str


@pytest.fixture
def timing() -> Iterator[None]:
    events.time_processing(True)
    try:
        yield
    finally:
        events.time_processing(False)


def test_buckets_are_cumulative_and_end_with_inf() -> None:
    histogram = DurationHistogram((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(("t",), seconds)
    ((labels, buckets, total),) = histogram.snapshot()
    assert labels == ("t",)
    assert buckets == [("0.1", 2), ("1", 3), ("+Inf", 4)]
    assert total == pytest.approx(3.65)


async def test_handler_calls_are_timed_by_topic_group_and_error_type(timing: None) -> None:
    event = Scoped(Meta("e"), "orders", 0, 1, "billing")

    async def handled() -> None:
        return None

    async def failed() -> None:
        raise KeyError("x")

    await bind_event(event, handled())
    with pytest.raises(KeyError):
        await bind_event(event, failed())
    durations = events.process_durations()
    assert durations is not None
    counts = {labels: buckets[-1][1] for labels, buckets, _ in durations.snapshot()}
    assert counts == {("orders", "billing", ""): 1, ("orders", "billing", "KeyError"): 1}


async def test_publishes_are_timed_under_the_topic_they_landed_on(timing: None) -> None:
    async def landed() -> Landed:
        return Landed("invoices")

    async def refused() -> Landed:
        raise TimeoutError

    assert await timed_send(landed(), None) == Landed("invoices")
    with pytest.raises(TimeoutError):
        await timed_send(refused(), "invoices")
    sends = events.send_durations()
    assert sends is not None
    counts = {labels: buckets[-1][1] for labels, buckets, _ in sends.snapshot()}
    assert counts == {("invoices", ""): 1, ("invoices", "TimeoutError"): 1}


def test_switching_metrics_off_drops_the_histograms() -> None:
    events.time_processing(True)
    events.time_processing(False)
    assert events.process_durations() is None
    assert events.send_durations() is None
