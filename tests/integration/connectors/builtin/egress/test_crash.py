"""Sink processes SIGKILLed mid-stream and restarted: nothing lost, no duplicate effect.

The process is the real command line (``eventplatform connectors run``) on a deployment in a
temporary folder: a webhook egress posting to a receiver in this test (on 127.0.0.1) and a
file sink. Events keep being published while the process runs; it is killed once both sinks
are busy, more events are published, and it is started again. Afterwards the receiver has every
event under its ``webhook-id`` (duplicates of an id are what a receiver deduplicates), and the
file has every event exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from eventplatform.producer import EventProducer
from eventplatform.registry import KafkaLogRegistry
from eventplatform.settings import load_settings
from tests.integration.connectors.builtin.egress.test_egress import Receiver, new_secret
from tests.integration.connectors.helpers import Tick, eventually
from tests.integration.connectors.runtime.test_crash import REPO, Process, cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 400


def write_deployment(root: Path, topic: str, url: str, secret: str) -> Path:
    schema = root / "schemas" / "tests" / "connectors" / "Tick.avsc"
    schema.parent.mkdir(parents=True)
    schema.write_text(json.dumps(Tick.avro_schema()))
    instances = root / "connectors"
    instances.mkdir()
    run = uuid.uuid4().hex[:8]
    (instances / "out.toml").write_text(
        f'name = "ticks-out-{run}"\n'
        'type = "webhook-egress"\n'
        f'topic = "{topic}"\n'
        "[settings]\n"
        "allow_private_addresses = true\n"
        "retry_schedule = [0.2, 0.5, 1.0]\n"
        f'state_topic = "{topic}-state"\n'
        "[[settings.endpoints]]\n"
        'name = "receiver"\n'
        f'url = "{url}"\n'
        'secret = "${RECEIVER_SECRET}"\n'
    )
    (instances / "file.toml").write_text(
        f'name = "ticks-file-{run}"\n'
        'type = "file-sink"\n'
        f'topic = "{topic}"\n'
        'event_type = "tests.connectors.Tick"\n'
        "[settings]\n"
        f'path = "{root / "ticks.jsonl"}"\n'
    )
    return instances


def file_keys(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["idempotencykey"] for line in path.read_text().splitlines()]


async def test_killed_sinks_lose_nothing_and_duplicate_no_effect(
    tmp_path: Path,
    kafka_bootstrap_servers: str,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Any],
) -> None:
    topic = await create_topic(unique_topic("ticks"), partitions=3)
    registry_topic = unique_topic("schemas")
    secret = new_secret()
    async with Receiver() as receiver:
        instances = write_deployment(tmp_path, topic, receiver.url("ticks"), secret)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("EVENTPLATFORM_")},
            "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
            "EVENTPLATFORM_REGISTRY__TOPIC": registry_topic,
            "RECEIVER_SECRET": secret,
            "PYTHONPATH": str(REPO),
        }
        command = [*cli(), "run", "--dir", str(instances)]
        path = tmp_path / "ticks.jsonl"
        settings = load_settings(
            kafka={"bootstrap_servers": kafka_bootstrap_servers}, producer={"linger_ms": 1}
        )
        published: list[str] = []
        registry = KafkaLogRegistry(topic=registry_topic, settings=settings)
        async with registry, EventProducer(settings=settings, registry=registry) as producer:

            async def feed(numbers: range) -> None:
                for n in numbers:
                    result = await producer.publish(Tick(n=n), topic=topic, key=str(n % 5))
                    published.append(result.event_id)
                    if n % 20 == 0:
                        await asyncio.sleep(0.02)

            first = Process(command, env, tmp_path, 1)
            try:
                await first.ready()
                feeding = asyncio.create_task(feed(range(EVENTS // 2)))

                async def busy() -> bool:
                    return len(receiver.got["ticks"]) >= 60 and len(file_keys(path)) >= 60

                await eventually(busy, within=60)
            finally:
                first.kill()  # mid-stream: events are still being published
            await feeding
            await feed(range(EVENTS // 2, EVENTS))

            second = Process(command, env, tmp_path, 2)
            try:
                await second.ready()

                async def drained() -> bool:
                    return (
                        len(set(receiver.ids("ticks"))) >= EVENTS
                        and len(set(file_keys(path))) >= EVENTS
                    )

                await eventually(drained, within=90)
            finally:
                assert await second.stop() == 0, second.err.read_text()

    assert len(published) == EVENTS
    # The receiver: every event, each under its own id; repeats are what it deduplicates.
    assert set(receiver.ids("ticks")) == set(published)
    verifier = Webhook(secret)
    numbers = {verifier.verify(got.body, got.headers)["data"]["n"] for got in receiver.got["ticks"]}
    assert numbers == set(range(EVENTS))
    # The file: every event exactly once.
    keys = file_keys(path)
    assert Counter(keys).most_common(1)[0][1] == 1
    assert set(keys) == set(published)
    print(
        f"receiver: {len(receiver.got['ticks'])} deliveries for {EVENTS} events; "
        f"file: {len(keys)} lines"
    )
