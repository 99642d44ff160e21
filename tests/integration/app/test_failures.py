"""Failures: SkipEvent, RetryLater, timeouts, retries with backoff, then the dead-letter topic."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

from eventplatform.app import Context, EventApp, RetryLater, SkipEvent
from eventplatform.producer import EventProducer, Outgoing
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import RetrySettings, Settings
from tests.integration.app.events import OrderPlaced
from tests.integration.app.helpers import eventually, headers_of, read_all, running


class Declined(Exception):
    """An application error that says it is permanent."""

    retriable = False


async def test_skip_event_counts_as_handled_without_retry(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    group: str,
) -> None:
    topic = unique_topic("orders")
    calls: Counter[str] = Counter()
    app = EventApp("skip", group_id=group, registry=registry, settings=settings)

    @app.handle(OrderPlaced, topic=topic)
    async def handle(event: OrderPlaced, ctx: Context) -> None:
        calls[event.order_id] += 1
        if event.order_id == "test":
            raise SkipEvent("test orders are not billed")

    await producer.publish_batch(
        [Outgoing(OrderPlaced(order_id=o), topic=topic) for o in ("test", "real")]
    )
    async with running(app):
        await eventually(lambda: app.stats.skipped == 1 and app.stats.handled == 1)
    assert calls == {"test": 1, "real": 1}
    assert app.stats.retries == 0
    assert app.stats.dead_lettered == 0


async def test_retry_later_runs_the_event_again_after_the_delay(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    group: str,
) -> None:
    topic = unique_topic("orders")
    attempts: list[int] = []
    times: list[float] = []
    app = EventApp("later", group_id=group, registry=registry, settings=settings)

    @app.handle(OrderPlaced, topic=topic)
    async def handle(event: OrderPlaced, ctx: Context) -> None:
        attempts.append(ctx.attempt)
        times.append(asyncio.get_running_loop().time())
        if ctx.attempt < 3:
            raise RetryLater(after=0.2, reason="not ready")

    await producer.publish(OrderPlaced(order_id="o"), topic=topic)
    async with running(app):
        await eventually(lambda: app.stats.handled == 1)
    assert attempts == [1, 2, 3]
    assert times[1] - times[0] >= 0.19
    assert app.stats.retries == 2


async def test_a_handler_past_its_timeout_is_cancelled_and_retried(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    group: str,
) -> None:
    topic = unique_topic("orders")
    cancelled = 0
    app = EventApp("timeout", group_id=group, registry=registry, settings=settings)

    @app.handle(OrderPlaced, topic=topic, timeout=0.2)
    async def handle(event: OrderPlaced, ctx: Context) -> None:
        nonlocal cancelled
        if ctx.attempt == 1:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled += 1
                raise

    await producer.publish(OrderPlaced(order_id="slow"), topic=topic)
    async with running(app):
        await eventually(lambda: app.stats.handled == 1)
    assert cancelled == 1
    assert app.stats.retries == 1


async def test_a_failing_handler_is_retried_then_dead_lettered_with_connect_headers(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    group: str,
    kafka_bootstrap_servers: str,
) -> None:
    topic, dlq = unique_topic("orders"), unique_topic("failed")
    attempts: Counter[str] = Counter()
    app = EventApp("billing", group_id=group, registry=registry, settings=settings)

    @app.handle(
        OrderPlaced,
        topic=topic,
        dlq_topic=dlq,
        retry=RetrySettings(max_attempts=4, initial_backoff=0.01, max_backoff=0.02),
    )
    async def bill(event: OrderPlaced, ctx: Context) -> None:
        attempts[event.order_id] += 1
        if event.order_id == "bad":
            raise RuntimeError("card declined for order bad")

    sent = await producer.publish(
        OrderPlaced(order_id="bad"),
        topic=topic,
        key="customer-7",
        headers=[("x-origin", b"checkout")],
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    await producer.publish(OrderPlaced(order_id="good"), topic=topic, key="customer-7")
    async with running(app):
        await eventually(lambda: app.stats.dead_lettered == 1 and app.stats.handled == 1)

    assert attempts == {"bad": 4, "good": 1}
    [letter] = await read_all(kafka_bootstrap_servers, dlq, expected=1)
    originals = await read_all(kafka_bootstrap_servers, topic, expected=2)
    original = originals[0]
    assert letter.key == b"customer-7"
    assert letter.value == original.value
    headers = headers_of(letter)
    for name, value in original.headers:
        assert headers[name] == value.decode()
    assert headers["x-origin"] == "checkout"
    assert headers["__connect.errors.topic"] == topic
    assert headers["__connect.errors.partition"] == str(sent.partition)
    assert headers["__connect.errors.offset"] == str(sent.offset)
    assert headers["__connect.errors.connector.name"] == "billing"
    assert headers["__connect.errors.task.id"] == app.instance_id
    assert headers["__connect.errors.stage"] == "TASK_PUT"
    assert headers["__connect.errors.class.name"].endswith("bill")
    assert headers["__connect.errors.exception.class.name"] == "RuntimeError"
    assert headers["__connect.errors.exception.message"] == "card declined for order bad"
    assert "Traceback" in headers["__connect.errors.exception.stacktrace"]
    assert "card declined" in headers["__connect.errors.exception.stacktrace"]
    assert headers["eventplatform.errors.group"] == group
    assert headers["eventplatform.errors.attempts"] == "4"


async def test_a_permanent_error_is_dead_lettered_without_retries(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    group: str,
    kafka_bootstrap_servers: str,
) -> None:
    topic = unique_topic("orders")
    attempts = 0
    app = EventApp("permanent", group_id=group, registry=registry, settings=settings)

    @app.handle(OrderPlaced, topic=topic)
    async def handle(event: OrderPlaced, ctx: Context) -> None:
        nonlocal attempts
        attempts += 1
        raise Declined("no such customer")

    await producer.publish(OrderPlaced(order_id="x"), topic=topic)
    async with running(app):
        await eventually(lambda: app.stats.dead_lettered == 1)
    assert attempts == 1
    [letter] = await read_all(kafka_bootstrap_servers, f"{topic}.dlq", expected=1)
    assert headers_of(letter)["__connect.errors.exception.class.name"].endswith(".Declined")


async def test_timeouts_that_keep_happening_end_in_the_dead_letter_topic(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    unique_topic: Callable[[str], str],
    group: str,
    kafka_bootstrap_servers: str,
) -> None:
    topic = unique_topic("orders")
    app = EventApp("stuck", group_id=group, registry=registry, settings=settings)

    @app.handle(OrderPlaced, topic=topic, timeout=0.05)
    async def handle(event: OrderPlaced, ctx: Context) -> None:
        await asyncio.sleep(10)

    await producer.publish(OrderPlaced(order_id="x"), topic=topic)
    async with running(app):
        await eventually(lambda: app.stats.dead_lettered == 1)
    [letter] = await read_all(kafka_bootstrap_servers, f"{topic}.dlq", expected=1)
    headers = headers_of(letter)
    assert headers["__connect.errors.exception.class.name"] == "eventplatform.errors.HandlerTimeout"
    assert headers["eventplatform.errors.attempts"] == "3"
