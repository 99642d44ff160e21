"""A normal start of ``serve`` and ``connectors run`` prints no WARNING or ERROR line (the
transient states of a start are logged at DEBUG), shows a periodic INFO rate line while events
flow, and ``serve`` prints its final counters once. (``up`` is held to the same in
tests/integration/cli/test_init.py.)

Each command runs as a subprocess whose topic does not exist yet when it starts, the state that
made aiokafka log ``Topic … not found in cluster metadata`` at ERROR.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eventplatform.producer import EventProducer, Outgoing
from eventplatform.settings import load_settings
from tests.integration.app.events import OrderPlaced
from tests.integration.connectors.helpers import eventually
from tests.integration.docs.project import Background

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
NOISE = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")


def environment(bootstrap_servers: str, **extra: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("EVENTPLATFORM_")},
        "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers,
        "PYTHONPATH": str(REPO),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        **extra,
    }


def rows(database: Path) -> int:
    if not database.exists():
        return 0
    db = sqlite3.connect(database)
    try:
        return int(db.execute("SELECT count(*) FROM effects").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


async def test_serve_starts_quietly_reports_its_rate_and_its_counters_once(
    tmp_path: Path,
    kafka_bootstrap_servers: str,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Any],
) -> None:
    topic, registry_topic = unique_topic("orders"), unique_topic("reg")
    database = tmp_path / "service.db"
    setup = sqlite3.connect(database)
    setup.execute("CREATE TABLE effects (idempotency_key TEXT, order_id TEXT)")
    setup.commit()
    setup.close()
    env = environment(
        kafka_bootstrap_servers,
        EVENTPLATFORM_REGISTRY__TOPIC=registry_topic,
        EVENTPLATFORM_CONSUMER__GROUP_ID=unique_topic("g"),
        EVENTPLATFORM_IDEMPOTENCY__STORE=f"sqlite:///{database}",
        APP_TEST_TOPIC=topic,
    )
    serve = Background(
        "eventplatform serve tests.integration.app.service:app --stats-interval 0.5",
        tmp_path,
        env,
        0,
    )
    try:  # the topic is created only once serve runs
        await eventually(lambda: _said(serve, "ready "), within=60)
        await create_topic(topic, partitions=2)
        settings = load_settings(
            kafka={"bootstrap_servers": kafka_bootstrap_servers},
            registry={"topic": registry_topic},
        )
        async with EventProducer(settings=settings) as producer:
            await producer.publish_batch(
                [
                    Outgoing(OrderPlaced(order_id=f"o{i}"), topic=topic, key=f"k{i}")
                    for i in range(30)
                ]
            )

        async def handled_and_reported() -> bool:
            assert serve.process.poll() is None, serve.errors()
            return rows(database) == 30 and "serve-test: " in serve.errors()

        await eventually(handled_and_reported, within=60)
    finally:
        code = await serve.interrupt()
    errors = serve.errors()
    assert code == 0, errors
    assert not [line for line in errors.splitlines() if NOISE.search(line)], errors
    assert re.search(r"INFO eventplatform\.rate: serve-test: \d+ events in \d+ s \(", errors)
    assert errors.count("stopped: {") == 1, errors
    assert "'handled': 30" in errors


async def _said(command: Background, text: str) -> bool:
    assert command.process.poll() is None, command.errors()
    return text in command.output()


async def test_connectors_run_starts_quietly_and_reports_its_rate(
    tmp_path: Path,
    kafka_bootstrap_servers: str,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Any],
) -> None:
    topic = unique_topic("ticks")
    lines = tmp_path / "ticks.jsonl"
    instances = tmp_path / "connectors"
    instances.mkdir()
    (instances / "ticks-in.toml").write_text(
        f'type = "file-source"\ntopic = "{topic}"\n'
        'event_type = "tests.integration.connectors.helpers:Tick"\n'
        f'[settings]\npath = "{lines}"\n'
    )
    env = environment(kafka_bootstrap_servers, EVENTPLATFORM_REGISTRY__TOPIC=unique_topic("reg"))
    run = Background(
        f"eventplatform connectors run --dir {instances} --stats-interval 0.5", tmp_path, env, 0
    )
    try:
        await eventually(lambda: _said(run, "ready connectors=ticks-in"), within=60)
        await create_topic(topic)
        await asyncio.to_thread(
            lines.write_text, "".join(json.dumps({"n": n}) + "\n" for n in range(5))
        )

        async def reported() -> bool:
            assert run.process.poll() is None, run.errors()
            return "connectors: " in run.errors()

        await eventually(reported, within=60)
    finally:
        code = await run.interrupt()
    errors = run.errors()
    assert code == 0, errors
    assert not [line for line in errors.splitlines() if NOISE.search(line)], errors
    assert re.search(r"INFO eventplatform\.rate: connectors: \d+ records in \d+ s \(", errors)


async def test_consume_without_from_beginning_says_it_waits_for_new_records(
    tmp_path: Path,
    kafka_bootstrap_servers: str,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Any],
) -> None:
    topic = await create_topic(unique_topic("orders"))
    env = environment(kafka_bootstrap_servers)
    consume = Background(f"eventplatform consume {topic} --idle-timeout 1", tmp_path, env, 0)
    code = await asyncio.to_thread(consume.process.wait, 60)
    assert code == 0, consume.errors()
    said = " ".join(consume.errors().split())
    assert f"reading {topic} from new records only: waiting for them" in said
    assert "--from-beginning reads those already there" in said

    again = Background(
        f"eventplatform consume {topic} --from-beginning --idle-timeout 1", tmp_path, env, 1
    )
    assert await asyncio.to_thread(again.process.wait, 60) == 0, again.errors()
    assert "waiting for" not in again.errors()
