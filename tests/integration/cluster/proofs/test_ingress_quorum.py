"""Ingress under quorum loss: two of three brokers down, the webhook ingress answers 503.

A webhook ingress publishes to a one-partition topic with three replicas,
``min.insync.replicas=2`` and ``acks=all`` (the producer's default). Two of the three brokers
are SIGKILLed: the partition's leader and one other. With combined broker+controller nodes
that also loses the KRaft quorum, so no new leader can be elected and the ISR cannot shrink:
the surviving broker neither leads the partition nor can acknowledge anything, and records
wait in the producer (they would get NOT_ENOUGH_REPLICAS where a quorum remained; here they
time out). Every request meanwhile must be answered ``503`` with ``Retry-After`` within the
ingress's ``publish_timeout`` (the client gives up well after it), never ``202`` and never
``500``. Once the brokers are restarted the ingress accepts again, and every event answered
``202`` is in the topic exactly once (the ``ce_id`` of each record is the answer's ``id``).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest

from eventplatform.connectors.builtin.ingress.connector import WebhookIngress
from eventplatform.devkafka.local import LocalCluster
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import ProducerSettings, Settings
from tests import waiting
from tests.integration.cluster.conftest import create_replicated
from tests.integration.cluster.proofs.support import event_ids, read_records
from tests.integration.connectors.helpers import Order, order_json, running

pytestmark = [pytest.mark.integration, pytest.mark.slow]

API_KEY = "quorum-proof"
HEADERS = {"X-API-Key": API_KEY, "content-type": "application/json"}
PUBLISH_TIMEOUT = 3
RETRY_AFTER = 2
CLIENT_TIMEOUT = PUBLISH_TIMEOUT + 10  # a hanging ingress fails the test, it does not stall it
WAITED = 2  # bursts that waited for Kafka (publish_timeout) while the two brokers are down
BURST = 4  # requests sent at once
PACE = 0.1  # seconds between bursts while the ingress refuses at once (not a condition)


@asynccontextmanager
async def ingress(settings: Settings, topic: str) -> AsyncIterator[WebhookIngress]:
    async with MemoryRegistry() as registry:
        connector = WebhookIngress(
            name="orders-in",
            topic=topic,
            event_type=Order,
            config={
                "port": 0,
                "api_keys": [API_KEY],
                "publish_timeout": PUBLISH_TIMEOUT,
                "retry_after": RETRY_AFTER,
                "key_field": "order_id",
            },
            settings=settings,
            registry=registry,
        )
        async with running(connector):
            yield connector


class Client:
    """Posts numbered orders and keeps every answer."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.sent = 0
        self.accepted: list[str] = []
        self.answers: Counter[str] = Counter()

    async def post(self) -> tuple[int, str | None]:
        self.sent += 1
        body = json.dumps(order_json(self.sent)).encode()
        async with self.http.post(self.url, data=body, headers=HEADERS) as response:
            status, retry_after = response.status, response.headers.get("Retry-After")
            if status == 202:
                self.accepted.append((await response.json())["id"])
            else:
                await response.read()
        self.answers[f"{status} Retry-After={retry_after}"] += 1
        return status, retry_after

    async def burst(self) -> list[tuple[int, str | None]]:
        return list(await asyncio.gather(*(self.post() for _ in range(BURST))))


@pytest.mark.timeout(240)
async def test_with_two_brokers_down_the_ingress_answers_503_and_accepts_again_after(
    kafka_cluster: LocalCluster,
    unique_topic: Callable[[str], str],
    report: Callable[[str], None],
) -> None:
    cluster = kafka_cluster
    started = time.monotonic()
    kafka = cluster.kafka_settings()
    topic = unique_topic("orders")
    await create_replicated(kafka, topic)
    settings = Settings(kafka=kafka, producer=ProducerSettings(linger_ms=1, delivery_timeout=60))
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
    async with (
        ingress(settings, topic) as connector,
        aiohttp.ClientSession(timeout=timeout) as http,
    ):
        client = Client(http, connector.url)
        for _ in range(5):
            assert set(await client.burst()) == {(202, None)}, client.answers
        before = len(client.accepted)

        leader = await cluster.leader(topic, 0)
        assert leader in cluster.node_ids, "the topic has no leader"
        down = [leader, random.choice([n for n in cluster.node_ids if n != leader])]
        for node in down:
            await asyncio.to_thread(cluster.kill, node)
        # Until several bursts waited out the publish timeout (between them, the ingress
        # refuses at once for Retry-After seconds).
        outage: list[tuple[int, str | None]] = []
        outage_started = time.monotonic()
        waited = 0
        while waited < WAITED:
            sent_at = time.monotonic()
            outage += await client.burst()
            if time.monotonic() - sent_at >= PUBLISH_TIMEOUT * 0.9:
                waited += 1
            else:
                await asyncio.sleep(PACE)
        outage_took = time.monotonic() - outage_started
        assert len(client.accepted) == before, f"202 with two brokers down: {client.answers}"
        assert set(outage) == {(503, str(RETRY_AFTER))}, client.answers

        await asyncio.gather(*(asyncio.to_thread(cluster.restart, node) for node in down))
        back_at = time.monotonic()

        async def accepted_again() -> bool:
            status, _ = await client.post()
            assert status in (202, 503), client.answers
            return status == 202

        await waiting.until(
            accepted_again, within=90, what="the ingress to accept again", interval=0.5
        )
        accepting_after = time.monotonic() - back_at
        for _ in range(5):
            assert set(await client.burst()) == {(202, None)}, client.answers

    in_topic = event_ids(await read_records(kafka, topic, partitions=1))
    lost = [i for i in client.accepted if in_topic[i] == 0]
    doubled = [i for i in client.accepted if in_topic[i] > 1]
    summary = (
        f"ingress under quorum loss: sent={client.sent} answers={dict(client.answers)} "
        f"accepted={len(client.accepted)} in_topic={sum(in_topic.values())} lost={len(lost)} "
        f"duplicated={len(doubled)}; brokers {down} down, {len(outage)} answers in "
        f"{outage_took:.1f}s ({waited} bursts waited for Kafka); accepting "
        f"{accepting_after:.1f}s after both were back; "
        f"{time.monotonic() - started:.0f}s in all"
    )
    report(summary)
    assert not lost, f"{summary}: e.g. {lost[:5]}"
    assert not doubled, f"{summary}: e.g. {doubled[:5]}"
    # The 503'd events may have been published after all (they were not refused, only not
    # acknowledged in time), each at most once.
    assert max(in_topic.values()) == 1, summary
