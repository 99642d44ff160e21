"""``eventplatform queues list|describe`` against a share group with a member and work in it."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from eventplatform.registry import MemoryRegistry
from eventplatform.settings import Settings
from tests.integration.queue.events import Job
from tests.integration.queue.helpers import job_queue

ROOT = Path(__file__).resolve().parents[3]


async def _cli(servers: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTPLATFORM_")}
    env |= {"EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS": servers, "COLUMNS": "250"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "eventplatform",
        "queues",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_list_and_describe_a_share_group(
    settings: Settings,
    registry: MemoryRegistry,
    topic: str,
    group: str,
    kafka_bootstrap_servers: str,
) -> None:
    async with job_queue(settings, registry, topic, group, prefetch=3) as queue:
        await queue.put_batch([Job(job_id=str(n)) for n in range(10)])
        items = await queue.get_batch(3, timeout=20)
        assert len(items) == 3
        for item in items[:2]:
            await item.task_done()
        await queue.consumer.flush()
        member = queue.consumer.member_id

        listed = await _cli(kafka_bootstrap_servers, "list")
        described = await _cli(kafka_bootstrap_servers, "describe", group)
        missing = await _cli(kafka_bootstrap_servers, "describe", f"{group}-missing")

    code, out, err = listed
    assert code == 0, err
    row = next(line for line in out.splitlines() if group in line)
    assert "Stable" in row
    code, out, err = described
    assert code == 0, err
    assert f"share group {group}: Stable" in out
    assert "1 member" in out
    member_row = next(line for line in out.splitlines() if member in line)
    assert f"{topic}[0]" in member_row
    part_row = next(line for line in out.splitlines() if line.startswith(f"│ {topic} "))
    cells = [cell.strip() for cell in part_row.strip("│").split("│")]
    # end 10; lag 8 (one in flight, seven available); the two accepted are below the start
    # offset or settled above it (the start offset the broker persists may trail).
    assert cells[:2] == [topic, "0"], cells
    start, end, lag, settled = (int(cell) for cell in cells[2:6])
    assert (end, lag, start + settled) == (10, 8, 2), cells
    code, out, err = missing
    assert code == 1
    assert f"share group '{group}-missing' does not exist" in err
