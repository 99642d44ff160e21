"""Every block of connectors/README.md runs as written (see :mod:`tests.docblocks` for how).

In a project holding the repository's ``schemas/``: the instance file is written and
validated by ``connectors list``; the Ticker connector, its event type, its entry point (the
``pyproject.toml`` block, installed as pip would) and its instance are written, and
``connectors run ticker`` publishes ticks until Ctrl-C, after which it exits 0.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.docblocks import REPO, blocks
from tests.integration.connectors.helpers import eventually
from tests.integration.docs.project import Project

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def ticks_written(bootstrap_servers: str) -> int:
    """Records in the README's ``ticks`` topic (all partitions), 0 while it does not exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers)
    await admin.start()
    await consumer.start()
    try:
        (described,) = await admin.describe_topics(["ticks"])
        partitions = [TopicPartition("ticks", p["partition"]) for p in described["partitions"]]
        return sum((await consumer.end_offsets(partitions)).values()) if partitions else 0
    finally:
        await consumer.stop()
        await admin.close()


async def test_connectors_readme_blocks_run_as_written(
    tmp_path: Path, kafka_bootstrap_servers: str
) -> None:
    project = Project(
        tmp_path / "project", kafka_bootstrap_servers, ORDERS_API_KEY="k3y-never-shown"
    )
    shutil.copytree(REPO / "schemas", project.root / "schemas")
    before = await ticks_written(kafka_bootstrap_servers)
    try:
        await project.run(blocks("connectors/README.md"))
        (ticker,) = project.background
        assert ticker.command.startswith("eventplatform connectors run ticker")

        async def ticking() -> bool:
            assert ticker.process.poll() is None, ticker.errors()
            return await ticks_written(kafka_bootstrap_servers) >= before + 2

        await eventually(ticking, within=60)
        assert "ready connectors=ticker" in ticker.output()
    finally:
        codes = await project.stop_background()
    assert codes == [0], project.background[0].errors()

    listed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "eventplatform", "connectors", "list"],
        cwd=project.root,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert "orders-in" in listed.stdout
    assert "ticker" in listed.stdout
    assert "k3y-never-shown" not in listed.stdout
