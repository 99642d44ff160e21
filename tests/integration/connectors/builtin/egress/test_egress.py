"""Webhook egress against the real broker and a real HTTP receiver on 127.0.0.1.

Deliveries are verified with the independent ``standardwebhooks`` package. Retry schedules are
scaled down to fractions of a second; every receiver listens on the loopback interface, and
the SSRF guard is exercised against it (no traffic ever leaves 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Self

import pytest
import pytest_asyncio
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from eventplatform.connectors.builtin.egress.connector import H_ENDPOINT, WebhookEgress
from eventplatform.connectors.builtin.egress.deliveries import (
    DeliveryAttempt,
    DeliveryOutcome,
)
from eventplatform.producer import EventProducer
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings
from tests.integration.connectors.helpers import Tick, TopicReader, eventually, running

pytestmark = pytest.mark.integration


def new_secret() -> str:
    """A fresh Standard Webhooks secret."""
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


@dataclass(slots=True)
class Got:
    """One request the receiver got."""

    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A webhook receiver on 127.0.0.1: records requests per path, answers as scripted.

    ``script(path, (503, {"Retry-After": "1"}), (500, {}))`` makes the next requests to ``path``
    get those answers, in order; then it answers 204. A status of ``STALL`` answers nothing
    until the receiver closes.
    """

    STALL = 0

    def __init__(self) -> None:
        self.got: dict[str, list[Got]] = defaultdict(list)
        self._scripts: dict[str, deque[tuple[int, dict[str, str]]]] = defaultdict(deque)
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self.port = 0

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/{path}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        self._closing.set()
        await self._runner.cleanup()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/{path}"

    def script(self, path: str, *answers: tuple[int, dict[str, str]]) -> None:
        self._scripts[path].extend(answers)

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        self.got[path].append(Got(dict(request.headers), await request.read(), time.monotonic()))
        script = self._scripts[path]
        status, headers = script.popleft() if script else (204, {})
        if status == self.STALL:
            await self._closing.wait()
            status = 503
        return web.Response(status=status, headers=headers)

    def ids(self, path: str) -> list[str]:
        return [got.headers["webhook-id"] for got in self.got[path]]


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as started:
        yield started


@pytest_asyncio.fixture
async def producer(settings: Settings, registry: MemoryRegistry) -> AsyncIterator[EventProducer]:
    async with EventProducer(settings=settings, registry=registry) as started:
        yield started


@pytest.fixture
def topic(unique_topic: Callable[[str], str]) -> str:
    return unique_topic("ticks")


def egress(
    settings: Settings,
    registry: MemoryRegistry,
    topic: str,
    state_topic: str,
    endpoints: list[dict[str, Any]],
    **config: Any,
) -> WebhookEgress:
    """A webhook egress on ``topic`` with a scaled-down schedule (unless given)."""
    options: dict[str, Any] = {
        "endpoints": endpoints,
        "retry_schedule": [0.1, 0.2],
        "allow_private_addresses": True,
        "state_topic": state_topic,
        "timeout": 5,
        **config,
    }
    return WebhookEgress(
        name=f"egress-{uuid.uuid4().hex[:8]}",
        topic=topic,
        config=options,
        settings=settings,
        registry=registry,
    )


async def publish(producer: EventProducer, topic: str, *numbers: int) -> list[str]:
    """Publish ``Tick(n)`` for each number; their event ids."""
    ids = []
    for n in numbers:
        result = await producer.publish(Tick(n=n), topic=topic, key=str(n % 3))
        ids.append(result.event_id)
    return ids


async def attempts(reader: TopicReader, topic: str, expected: int) -> list[DeliveryAttempt]:
    return [DeliveryAttempt.from_json(r.value) for r in await reader.read(topic, expected)]


async def test_events_arrive_signed_with_the_standard_webhooks_scheme(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    receiver: Receiver,
    reader: TopicReader,
    topic: str,
    create_topic: Callable[..., Any],
    unique_topic: Callable[[str], str],
) -> None:
    await create_topic(topic, partitions=3)
    secret = new_secret()
    connector = egress(
        settings,
        registry,
        topic,
        unique_topic("state"),
        [{"name": "shop", "url": receiver.url("shop"), "secret": secret}],
    )
    ids = await publish(producer, topic, 1, 2, 3)
    async with running(connector):
        await eventually(lambda: _count(receiver, "shop", 3))
    verifier = Webhook(secret)
    payloads = [verifier.verify(got.body, got.headers) for got in receiver.got["shop"]]
    assert sorted(receiver.ids("shop")) == sorted(ids)
    assert {p["data"]["n"] for p in payloads} == {1, 2, 3}
    first = payloads[0]
    assert first["type"] == "tests.connectors.Tick"
    assert first["id"] in ids
    assert first["timestamp"].endswith("Z")
    assert first["source"] == "/eventplatform"
    assert receiver.got["shop"][0].headers["Content-Type"] == "application/json"
    records = await attempts(reader, connector.deliveries_topic, 3)
    assert {r.outcome for r in records} == {DeliveryOutcome.DELIVERED}
    assert {r.event_id for r in records} == set(ids)
    assert all(r.status_code == 204 and r.attempt == 1 for r in records)
    assert all(r.latency_ms is not None and r.latency_ms >= 0 for r in records)
    assert connector.stats.records == 3


async def test_event_types_select_the_endpoints(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    receiver: Receiver,
    topic: str,
    create_topic: Callable[..., Any],
    unique_topic: Callable[[str], str],
) -> None:
    await create_topic(topic)
    connector = egress(
        settings,
        registry,
        topic,
        unique_topic("state"),
        [
            {"name": "all", "url": receiver.url("all"), "secret": new_secret()},
            {
                "name": "ticks",
                "url": receiver.url("ticks"),
                "secret": new_secret(),
                "event_types": ["tests.connectors.*"],
            },
            {
                "name": "other",
                "url": receiver.url("other"),
                "secret": new_secret(),
                "event_types": ["com.example.orders.OrderPlaced"],
            },
        ],
    )
    await publish(producer, topic, 1, 2)
    async with running(connector):
        await eventually(lambda: _count(receiver, "all", 2))
        await eventually(lambda: _count(receiver, "ticks", 2))
    assert receiver.got["other"] == []


async def test_retry_after_is_honoured_over_the_schedule(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    receiver: Receiver,
    reader: TopicReader,
    topic: str,
    create_topic: Callable[..., Any],
    unique_topic: Callable[[str], str],
) -> None:
    await create_topic(topic)
    receiver.script("slow", (503, {"Retry-After": "1"}), (500, {}))
    connector = egress(
        settings,
        registry,
        topic,
        unique_topic("state"),
        [{"name": "slow", "url": receiver.url("slow"), "secret": new_secret()}],
        retry_schedule=[0.05, 0.3, 30],
    )
    (event_id,) = await publish(producer, topic, 1)
    async with running(connector):
        await eventually(lambda: _count(receiver, "slow", 3))
    first, second, third = receiver.got["slow"]
    assert second.at - first.at >= 0.95  # Retry-After: 1, not the schedule's 0.05
    assert 0.25 <= third.at - second.at < 5  # no Retry-After: the schedule's second wait
    assert len(set(receiver.ids("slow"))) == 1  # every attempt carries the same webhook-id
    records = await attempts(reader, connector.deliveries_topic, 3)
    assert [(r.attempt, r.status_code, r.outcome) for r in records] == [
        (1, 503, DeliveryOutcome.RETRYING),
        (2, 500, DeliveryOutcome.RETRYING),
        (3, 204, DeliveryOutcome.DELIVERED),
    ]
    assert records[0].next_attempt_at is not None
    assert {r.event_id for r in records} == {event_id}


async def test_an_attempt_without_an_answer_in_time_fails_and_is_retried(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    receiver: Receiver,
    reader: TopicReader,
    topic: str,
    create_topic: Callable[..., Any],
    unique_topic: Callable[[str], str],
) -> None:
    await create_topic(topic)
    receiver.script("stuck", (Receiver.STALL, {}))
    connector = egress(
        settings,
        registry,
        topic,
        unique_topic("state"),
        [
            {"name": "stuck", "url": receiver.url("stuck"), "secret": new_secret(), "timeout": 0.5},
            {"name": "quick", "url": receiver.url("quick"), "secret": new_secret()},
        ],
        retry_schedule=[0.05],
    )
    await publish(producer, topic, 1, 2)
    async with running(connector):
        await eventually(lambda: _count(receiver, "stuck", 3))
        await eventually(lambda: _count(receiver, "quick", 2))
    first, second, third = receiver.got["stuck"]
    # The endpoint's own timeout (0.5 s), not the connector's (5 s).
    assert 0.5 <= second.at - first.at < 4
    assert [g.payload["data"]["n"] for g in (first, second, third)] == [1, 1, 2]
    records = await attempts(reader, connector.deliveries_topic, 5)
    stuck = [r for r in records if r.endpoint == "stuck"]
    assert [(r.attempt, r.status_code, r.outcome) for r in stuck] == [
        (1, None, DeliveryOutcome.RETRYING),
        (2, 204, DeliveryOutcome.DELIVERED),
        (1, 204, DeliveryOutcome.DELIVERED),
    ]
    assert (stuck[0].error or "").startswith("TimeoutError")
    assert (stuck[0].latency_ms or 0) >= 500
    assert {r.outcome for r in records if r.endpoint == "quick"} == {DeliveryOutcome.DELIVERED}


async def test_a_failing_endpoint_holds_back_only_its_own_later_events(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    receiver: Receiver,
    topic: str,
    create_topic: Callable[..., Any],
    unique_topic: Callable[[str], str],
) -> None:
    await create_topic(topic)
    receiver.script("flaky", (500, {}), (500, {}), (503, {"Retry-After": "1"}))
    connector = egress(
        settings,
        registry,
        topic,
        unique_topic("state"),
        [
            {"name": "flaky", "url": receiver.url("flaky"), "secret": new_secret()},
            {"name": "healthy", "url": receiver.url("healthy"), "secret": new_secret()},
        ],
        retry_schedule=[0.2, 0.2, 0.2],
    )
    await publish(producer, topic, *range(1, 6))
    async with running(connector):
        await eventually(lambda: _count(receiver, "healthy", 5))
        healthy_done = time.monotonic()
        await eventually(lambda: _count(receiver, "flaky", 8))
    flaky = [got.payload["data"]["n"] for got in receiver.got["flaky"]]
    # Event 1 was tried 4 times before 2..5 went out, in order.
    assert flaky == [1, 1, 1, 1, 2, 3, 4, 5]
    assert [g.payload["data"]["n"] for g in receiver.got["healthy"]] == [1, 2, 3, 4, 5]
    # The healthy endpoint did not wait for the flaky one (which needed ~1.4 s).
    assert healthy_done < receiver.got["flaky"][4].at


async def test_gone_disables_the_endpoint_across_restarts(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    receiver: Receiver,
    reader: TopicReader,
    topic: str,
    create_topic: Callable[..., Any],
    unique_topic: Callable[[str], str],
) -> None:
    await create_topic(topic)
    state_topic = unique_topic("state")
    receiver.script("gone", (410, {}))
    endpoints = [
        {"name": "gone", "url": receiver.url("gone"), "secret": new_secret()},
        {"name": "other", "url": receiver.url("other"), "secret": new_secret()},
    ]
    first = egress(settings, registry, topic, state_topic, endpoints)
    await publish(producer, topic, 1, 2)
    async with running(first):
        await eventually(lambda: _count(receiver, "other", 2))
        await eventually(lambda: _records(reader, first.deliveries_topic, 4))
    assert len(receiver.got["gone"]) == 1  # the 410; event 2 was skipped
    records = await attempts(reader, first.deliveries_topic, 4)
    outcomes = sorted((r.endpoint, r.outcome.value) for r in records)
    assert outcomes == [
        ("gone", "disabled"),
        ("gone", "skipped"),
        ("other", "delivered"),
        ("other", "delivered"),
    ]

    # A new instance (a restart) reads the state: still disabled.
    second = WebhookEgress(
        name=first.name, topic=topic, config=first.config, settings=settings, registry=registry
    )
    await publish(producer, topic, 3)
    async with running(second):
        await eventually(lambda: _count(receiver, "other", 3))
        assert second.states.disabled(second.endpoints[0])
        await second.states.enable("gone")
        assert not second.states.disabled(second.endpoints[0])
    assert len(receiver.got["gone"]) == 1

    # Enabled again: the next events go to it.
    third = WebhookEgress(
        name=first.name, topic=topic, config=first.config, settings=settings, registry=registry
    )
    await publish(producer, topic, 4)
    async with running(third):
        await eventually(lambda: _count(receiver, "gone", 2))
    assert receiver.got["gone"][-1].payload["data"]["n"] == 4


async def test_exhausted_schedule_dead_letters_and_moves_on(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    receiver: Receiver,
    reader: TopicReader,
    topic: str,
    create_topic: Callable[..., Any],
    unique_topic: Callable[[str], str],
    kafka_admin: Any,
) -> None:
    await create_topic(topic)
    receiver.script("down", (500, {}), (500, {}), (500, {}))
    connector = egress(
        settings,
        registry,
        topic,
        unique_topic("state"),
        [{"name": "down", "url": receiver.url("down"), "secret": new_secret()}],
        retry_schedule=[0.05, 0.05],
    )
    (doomed, fine) = await publish(producer, topic, 1, 2)
    async with running(connector):
        await eventually(lambda: _count(receiver, "down", 4))
        await eventually(lambda: _committed(kafka_admin, connector.group_id, topic, 2))
    assert receiver.ids("down") == [doomed, doomed, doomed, fine]
    (letter,) = await reader.read(connector.dlq_topic, 1)
    assert letter.headers["__connect.errors.topic"] == topic
    assert letter.headers["__connect.errors.offset"] == "0"
    assert letter.headers["__connect.errors.stage"] == "TASK_PUT"
    assert letter.headers["__connect.errors.exception.class.name"] == (
        "eventplatform.errors.DeliveryFailed"
    )
    assert "answered 500 (attempt 3 of 3)" in letter.headers["__connect.errors.exception.message"]
    assert letter.headers["eventplatform.errors.attempts"] == "3"
    assert letter.headers[H_ENDPOINT] == "down"
    assert letter.headers["ce_id"] == doomed
    decoded = await reader.decode(letter, Tick)
    assert decoded.n == 1
    records = await attempts(reader, connector.deliveries_topic, 4)
    assert [r.outcome.value for r in records] == [
        "retrying",
        "retrying",
        "dead_lettered",
        "delivered",
    ]
    assert connector.stats.errors == 1


async def test_the_ssrf_guard_refuses_loopback_unless_allowed(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    receiver: Receiver,
    reader: TopicReader,
    topic: str,
    create_topic: Callable[..., Any],
    unique_topic: Callable[[str], str],
) -> None:
    await create_topic(topic)
    # "localhost" resolves to a loopback address: refused when connecting, never sent.
    connector = egress(
        settings,
        registry,
        topic,
        unique_topic("state"),
        [
            {
                "name": "internal",
                "url": receiver.url("internal", "localhost"),
                "secret": new_secret(),
            }
        ],
        allow_private_addresses=False,
    )
    (event_id,) = await publish(producer, topic, 1)
    async with running(connector):
        (letter,) = await reader.read(connector.dlq_topic, 1)
    assert receiver.got["internal"] == []
    assert letter.headers["__connect.errors.exception.class.name"] == (
        "eventplatform.errors.UnsafeDestination"
    )
    assert "loopback" in letter.headers["__connect.errors.exception.message"]
    assert letter.headers["eventplatform.errors.attempts"] == "1"
    (record,) = await attempts(reader, connector.deliveries_topic, 1)
    assert (record.outcome, record.event_id) == (DeliveryOutcome.REFUSED, event_id)


async def test_undecodable_records_are_dead_lettered(
    settings: Settings,
    registry: MemoryRegistry,
    producer: EventProducer,
    receiver: Receiver,
    reader: TopicReader,
    topic: str,
    create_topic: Callable[..., Any],
    unique_topic: Callable[[str], str],
) -> None:
    await create_topic(topic)
    connector = egress(
        settings,
        registry,
        topic,
        unique_topic("state"),
        [{"name": "shop", "url": receiver.url("shop"), "secret": new_secret()}],
    )
    await producer.send_raw(topic, b"not avro", headers=[("ce_id", b"x")])
    (good,) = await publish(producer, topic, 7)
    async with running(connector):
        await eventually(lambda: _count(receiver, "shop", 1))
        (letter,) = await reader.read(connector.dlq_topic, 1)
    assert receiver.ids("shop") == [good]
    assert letter.value == b"not avro"
    assert letter.headers["__connect.errors.stage"] == "HEADER_CONVERTER"


async def _count(receiver: Receiver, path: str, expected: int) -> bool:
    return len(receiver.got[path]) >= expected


async def _records(reader: TopicReader, topic: str, expected: int) -> bool:
    return await reader.end_offset(topic) >= expected


async def _committed(admin: Any, group: str, topic: str, expected: int) -> bool:
    offsets = await admin.list_consumer_group_offsets(group)
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic) >= expected
