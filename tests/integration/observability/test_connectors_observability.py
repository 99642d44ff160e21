"""``connectors run --health-port --log-format json``: ready once its connector runs, its
records counted in ``/metrics``, every line of stderr a JSON object."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.connectors.helpers import eventually
from tests.integration.docs.project import Background, free_port
from tests.integration.observability.helpers import environment, get, said, scrape, stop, total

pytestmark = pytest.mark.integration


async def test_connectors_run_serves_probes_and_metrics_and_logs_json_lines(
    tmp_path: Path,
    kafka_bootstrap_servers: str,
    unique_topic: Callable[[str], str],
    create_topic: Callable[..., Any],
) -> None:
    topic = await create_topic(unique_topic("ticks"))
    lines = tmp_path / "ticks.jsonl"
    instances = tmp_path / "connectors"
    instances.mkdir()
    (instances / "ticks-in.toml").write_text(
        f'type = "file-source"\ntopic = "{topic}"\n'
        'event_type = "tests.integration.connectors.helpers:Tick"\n'
        f'[settings]\npath = "{lines}"\n'
    )
    env = environment(kafka_bootstrap_servers, EVENTPLATFORM_REGISTRY__TOPIC=unique_topic("reg"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    run = Background(
        f"eventplatform connectors run --dir {instances} --health-port {port} --log-format json",
        tmp_path,
        env,
        0,
    )
    try:
        await eventually(lambda: said(run, "ready connectors=ticks-in"), within=60)

        async def ready() -> bool:
            assert run.process.poll() is None, run.errors()
            status, _ = await get(f"{url}/health/ready")
            return status == 200

        await eventually(ready, within=60)
        await asyncio.to_thread(
            lines.write_text, "".join(json.dumps({"n": n}) + "\n" for n in range(5))
        )

        async def published() -> bool:
            samples = await scrape(url)
            return (
                total(samples, "eventplatform_connector_records_total", connector="ticks-in") == 5
            )

        await eventually(published, within=60)
        samples = await scrape(url)
        state = "eventplatform_connector_state"
        assert total(samples, state, connector="ticks-in", state="running") == 1
        assert total(samples, state, connector="ticks-in") == 1  # one state at a time
    finally:
        code = await stop(run)
    assert code == 0, run.errors()
    logged = [json.loads(line) for line in run.errors().splitlines()]
    assert any(line["message"].startswith("health server on ") for line in logged)
    assert any(line["message"].startswith("ticks-in: stopped") for line in logged), logged
