"""``eventplatform serve MODULE:APP`` runs an app in its own process; SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from eventplatform.producer import EventProducer, Outgoing
from eventplatform.settings import load_settings
from tests.integration.app.events import OrderPlaced
from tests.integration.app.helpers import eventually

ROOT = Path(__file__).resolve().parents[3]


def _count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        (count,) = conn.execute("SELECT count(DISTINCT idempotency_key) FROM effects").fetchone()
    conn.close()
    return int(count)


async def test_serve_runs_an_app_and_sigterm_stops_it_gracefully(
    kafka_bootstrap_servers: str,
    unique_topic: Callable[[str], str],
    kafka_admin: AIOKafkaAdminClient,
    tmp_path: Path,
) -> None:
    topic, group, registry_topic = unique_topic("orders"), unique_topic("g"), unique_topic("reg")
    database = tmp_path / "service.db"
    with sqlite3.connect(database) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE effects (idempotency_key TEXT, order_id TEXT)")
    setup.close()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EVENTPLATFORM_")},
        "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "EVENTPLATFORM_REGISTRY__TOPIC": registry_topic,
        "EVENTPLATFORM_CONSUMER__GROUP_ID": group,
        "EVENTPLATFORM_IDEMPOTENCY__STORE": f"sqlite:///{database}",
        "APP_TEST_TOPIC": topic,
    }
    settings = load_settings(
        kafka={"bootstrap_servers": kafka_bootstrap_servers}, registry={"topic": registry_topic}
    )
    async with EventProducer(settings=settings) as producer:
        await producer.publish_batch(
            [Outgoing(OrderPlaced(order_id=f"o{i}"), topic=topic, key=f"k{i}") for i in range(20)]
        )

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "eventplatform.cli.serve",
        "tests.integration.app.service:app",
        "--instance-id",
        "serve-1",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        ready = await asyncio.wait_for(process.stdout.readline(), 60)
        assert ready.decode().startswith(f"ready group={group} topics={topic} instance=serve-1")
        await eventually(lambda: _count(database) == 20, within=30)
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.stderr is not None
    stderr = (await process.stderr.read()).decode()
    assert code == 0, stderr
    assert "stopped" in stderr
    committed = await kafka_admin.list_consumer_group_offsets(group)
    assert sum(meta.offset for tp, meta in committed.items() if tp.topic == topic) == 20
    # A static member (--instance-id, KIP-345) does not leave the group when it stops: its
    # partitions wait for its next incarnation instead of moving to the others and back.
    [response] = await kafka_admin.describe_consumer_groups([group])
    state, members = response.groups[0][2], response.groups[0][5]
    assert state == "Stable"
    assert len(members) == 1
