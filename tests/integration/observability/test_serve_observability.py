"""``serve`` observed from outside, as an operator's tooling would: ``/metrics`` scraped and
parsed with the Prometheus client's parser during a run, ``/health/ready`` flipping with the
group and the broker, and ``--log-format json`` lines parsed one by one."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from eventplatform.devkafka import LocalKafka
from eventplatform.producer import EventProducer, Outgoing
from eventplatform.settings import load_settings
from tests.integration.app.events import OrderPlaced
from tests.integration.connectors.helpers import eventually
from tests.integration.docs.project import Background, free_port
from tests.integration.observability.helpers import (
    SERVICE,
    environment,
    get,
    said,
    scrape,
    stop,
    total,
)

pytestmark = pytest.mark.integration


def store(tmp_path: Path) -> str:
    database = tmp_path / "service.db"
    sqlite3.connect(database).close()
    return f"sqlite:///{database}"


async def publish(bootstrap_servers: str, registry_topic: str, items: list[Outgoing]) -> None:
    settings = load_settings(
        kafka={"bootstrap_servers": bootstrap_servers}, registry={"topic": registry_topic}
    )
    async with EventProducer(settings=settings) as producer:
        await producer.publish_batch(items)


async def test_metrics_count_what_was_sent_skipped_as_duplicate_and_dead_lettered(
    tmp_path: Path,
    kafka_bootstrap_servers: str,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Any],
) -> None:
    topic, registry_topic = unique_topic("orders"), unique_topic("reg")
    await create_topic(topic)
    await create_topic(f"{topic}.dlq")
    group = unique_topic("g")
    port = free_port()
    env = environment(
        kafka_bootstrap_servers,
        EVENTPLATFORM_REGISTRY__TOPIC=registry_topic,
        EVENTPLATFORM_CONSUMER__GROUP_ID=group,
        EVENTPLATFORM_IDEMPOTENCY__STORE=store(tmp_path),
        APP_TEST_TOPIC=topic,
    )
    serve = Background(
        f"eventplatform serve {SERVICE} --health-port {port} --stats-interval 0", tmp_path, env, 0
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await eventually(lambda: said(serve, "ready "), within=60)
        good = [
            Outgoing(OrderPlaced(order_id=f"o{i}"), topic=topic, key=f"k{i}", event_id=f"id-o{i}")
            for i in range(10)
        ]
        # Same idempotency keys as three of the good ones: skipped, their handler never runs.
        again = [
            Outgoing(
                OrderPlaced(order_id=f"o{i}"), topic=topic, key=f"k{i}", idempotency_key=f"id-o{i}"
            )
            for i in range(3)
        ]
        bad = [
            Outgoing(OrderPlaced(order_id=f"bad{i}"), topic=topic, key=f"b{i}") for i in range(2)
        ]
        await publish(kafka_bootstrap_servers, registry_topic, [*good, *again, *bad])

        samples: dict[Any, float] = {}

        async def all_settled() -> bool:
            nonlocal samples
            assert serve.process.poll() is None, serve.errors()
            samples = await scrape(url)
            settled = sum(
                total(samples, f"eventplatform_app_{name}_total")
                for name in ("handled", "skipped_duplicates", "dead_lettered")
            )
            return settled >= 15

        await eventually(all_settled, within=60)
        assert total(samples, "messaging_client_consumed_messages_total") == 15
        assert total(samples, "eventplatform_app_received_total") == 15
        assert total(samples, "eventplatform_app_handled_total") == 10
        assert total(samples, "eventplatform_app_skipped_duplicates_total") == 3
        assert total(samples, "eventplatform_app_dead_lettered_total") == 2
        assert total(samples, "eventplatform_app_retries_total") == 0
        # One process-duration sample per handler call, by outcome.
        calls = "messaging_process_duration_seconds_count"
        assert total(samples, calls, messaging_destination_name=topic, error_type="") == 10
        assert total(samples, calls, error_type="ValueError") == 2
        assert total(samples, calls, messaging_consumer_group_name=group) == 12

        async def caught_up() -> bool:
            lag = await scrape(url)
            names = [name for name, _ in lag if name == "eventplatform_consumer_lag"]
            return (
                bool(names)
                and total(lag, "eventplatform_consumer_lag", messaging_destination_name=topic) == 0
            )

        await eventually(caught_up, within=30)
        status, body = await get(f"{url}/health/ready")
        assert status == 200, body
        assert json.loads(body)["status"] == "ready"
    finally:
        code = await stop(serve)
    assert code == 0, serve.errors()


async def test_json_logs_are_one_object_per_line_with_the_event_in_scope(
    tmp_path: Path,
    kafka_bootstrap_servers: str,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Any],
) -> None:
    topic, registry_topic = unique_topic("orders"), unique_topic("reg")
    await create_topic(topic)
    env = environment(
        kafka_bootstrap_servers,
        EVENTPLATFORM_REGISTRY__TOPIC=registry_topic,
        EVENTPLATFORM_CONSUMER__GROUP_ID=unique_topic("g"),
        EVENTPLATFORM_IDEMPOTENCY__STORE=store(tmp_path),
        APP_TEST_TOPIC=topic,
        # A secret in the settings: it must not reach any line.
        EVENTPLATFORM_REGISTRY__PASSWORD="hunter2-never-logged",
    )
    serve = Background(
        f"eventplatform serve {SERVICE} --log-format json --stats-interval 0.5", tmp_path, env, 0
    )
    try:
        await eventually(lambda: said(serve, "ready "), within=60)
        items = [
            Outgoing(OrderPlaced(order_id=f"o{i}"), topic=topic, key="k", event_id=f"id-o{i}")
            for i in range(3)
        ]
        await publish(kafka_bootstrap_servers, registry_topic, items)

        async def logged() -> bool:
            assert serve.process.poll() is None, serve.errors()
            return serve.errors().count("handling order") == 3

        await eventually(logged, within=60)
    finally:
        code = await stop(serve)
    assert code == 0, serve.errors()
    text = serve.errors()
    assert "hunter2" not in text
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one object
    assert lines
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
    handled = [line for line in lines if line["message"].startswith("handling order")]
    assert [line["message"] for line in handled] == [f"handling order o{i}" for i in range(3)]
    for offset, line in enumerate(handled):
        assert line["logger"] == "tests.observability.service"
        assert (line["topic"], line["partition"], line["offset"]) == (topic, 0, offset)
        assert line["event_id"] == f"id-o{offset}"
    outside = [line for line in lines if not line["message"].startswith("handling order")]
    assert outside
    assert not [line for line in outside if "topic" in line]
    assert any("stopped: {" in line["message"] for line in lines)


@pytest.mark.slow
async def test_readiness_follows_the_group_and_the_broker(
    tmp_path: Path, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("orders")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="own-kafka") as thread:
        loop = asyncio.get_running_loop()
        kafka = LocalKafka(version=load_settings().devkafka.version)
        await loop.run_in_executor(thread, kafka.start)
        serve: Background | None = None
        try:
            servers = kafka.bootstrap_servers
            admin = AIOKafkaAdminClient(bootstrap_servers=servers)
            await admin.start()
            try:
                await admin.create_topics([NewTopic(topic, 2, 1)])
            finally:
                await admin.close()
            port = free_port()
            env = environment(
                servers,
                EVENTPLATFORM_CONSUMER__GROUP_ID=unique_topic("g"),
                EVENTPLATFORM_IDEMPOTENCY__STORE=store(tmp_path),
                EVENTPLATFORM_PRODUCER__DELIVERY_TIMEOUT="5",
                APP_TEST_TOPIC=topic,
            )
            serve = Background(
                f"eventplatform serve {SERVICE} --health-port {port}", tmp_path, env, 0
            )
            url = f"http://127.0.0.1:{port}/health/ready"
            seen: list[tuple[int, dict[str, Any]]] = []

            async def ready() -> bool:
                assert serve is not None
                assert serve.process.poll() is None, serve.errors()
                status, body = await get(url)
                if status:
                    seen.append((status, json.loads(body)))
                return status == 200

            await eventually(ready, within=90)
            first_status, first = seen[0]
            assert first_status == 503, seen[0]
            assert first["status"] == "not ready"
            assert first["reasons"], first
            body = seen[-1][1]
            (group,) = [c for c in body["checks"] if c["name"].startswith("group ")]
            assert group["ok"], body
            assert "2 partition(s)" in group["detail"]

            await loop.run_in_executor(thread, kafka.stop)

            async def not_ready() -> bool:
                assert serve is not None
                status, body = await get(url)
                seen.append((status, json.loads(body) if status else {}))
                return status == 503

            await eventually(not_ready, within=60)
            reasons = seen[-1][1]["reasons"]
            assert any(reason.startswith("broker: ") for reason in reasons), reasons
        finally:
            if serve is not None:
                await stop(serve)
            await loop.run_in_executor(thread, kafka.stop)
