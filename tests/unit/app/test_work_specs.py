"""``@app.work`` registration: the checks made before anything connects."""

from __future__ import annotations

import asyncio

import pytest

from eventplatform import EventQueue, QueueItem
from eventplatform.app import Context, EventApp
from eventplatform.app.work import WorkSpecs, run_together
from eventplatform.errors import ConfigurationError
from eventplatform.schema import AvroEvent
from eventplatform.settings import load_settings


class Task(AvroEvent, namespace="com.example.work", topic="tasks"):
    """A unit of work."""

    name: str


class Other(AvroEvent, namespace="com.example.work", topic="tasks"):
    """Another type on the same topic."""

    name: str


def _app() -> EventApp:
    return EventApp("workers", settings=load_settings(kafka={"bootstrap_servers": "x:9092"}))


async def _noop(event: Task, ctx: Context) -> None:
    return None


def test_work_registers_a_share_group_with_its_configs() -> None:
    app = _app()
    app.work(
        Task,
        group="mailer",
        concurrency=8,
        group_configs={"share.record.lock.duration.ms": "60000"},
    )(_noop)
    [spec] = app._work.specs
    assert (spec.group, spec.concurrency, spec.delivery_limit) == ("mailer", 8, 5)
    assert spec.configs() == {
        "share.auto.offset.reset": "earliest",
        "share.delivery.count.limit": "5",
        "share.record.lock.duration.ms": "60000",
    }
    assert app.topics == ["tasks"]


def test_a_delivery_limit_below_the_broker_minimum_keeps_the_minimum_on_the_group() -> None:
    app = _app()
    app.work(Task, group="mailer", delivery_limit=1)(_noop)
    [spec] = app._work.specs
    assert spec.delivery_limit == 1
    assert spec.configs()["share.delivery.count.limit"] == "2"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": 0}, "concurrency must be at least 1"),
        ({"delivery_limit": 11}, "delivery_limit must be 1–10"),
        ({"delivery_limit": 0}, "delivery_limit must be 1–10"),
    ],
)
def test_out_of_range_options_are_refused(options: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _app().work(Task, group="mailer", **options)(_noop)


def test_a_share_group_takes_one_event_class() -> None:
    app = _app()
    app.work(Task, group="mailer")(_noop)
    with pytest.raises(ConfigurationError, match="share group 'mailer' already runs"):
        app.work(Other, group="mailer")(_noop)
    app.work(Other, group="reports")(_noop)
    assert len(app._work.specs) == 2
    assert not WorkSpecs()


async def test_run_together_stops_the_others_when_one_fails() -> None:
    stopping = asyncio.Event()
    finished: list[str] = []

    async def fails() -> None:
        raise RuntimeError("boom")

    async def waits() -> None:
        await stopping.wait()
        finished.append("waited")

    with pytest.raises(RuntimeError, match="boom"):
        await run_together([fails(), waits()], stopping.set)
    assert finished == ["waited"]


def test_the_queue_is_exported() -> None:
    assert EventQueue.__name__ == "EventQueue"
    assert QueueItem.__name__ == "QueueItem"
