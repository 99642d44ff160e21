""":class:`~eventplatform.deployment.Deployment` in-process, over the session's broker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from rich.console import Console

from eventplatform.cli.up import LiveView
from eventplatform.deployment import Deployment
from eventplatform.devkafka import Broker
from eventplatform.devkafka.provision import Provider
from eventplatform.errors import IncompatibleSchema
from eventplatform.registry import KafkaLogRegistry
from eventplatform.settings import Settings, load_settings
from tests.integration.connectors.helpers import Tick

pytestmark = pytest.mark.integration

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def write_catalogue(root: Path, schema: dict[str, object]) -> None:
    path = root / "schemas" / "tests" / "connectors" / "Tick.avsc"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema))


@pytest.fixture
def settings(kafka_bootstrap_servers: str, unique_topic: Callable[[str], str]) -> Settings:
    return load_settings(
        kafka={"bootstrap_servers": kafka_bootstrap_servers},
        registry={"topic": unique_topic("schemas")},
        producer={"linger_ms": 1},
        consumer={"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000},
        idempotency={"store": "memory://"},
    )


async def test_a_deployment_serves_registers_creates_and_runs(
    tmp_path: Path,
    settings: Settings,
    unique_topic: Callable[[str], str],
    kafka_admin: Any,
) -> None:
    write_catalogue(tmp_path, Tick.avro_schema())
    topic = unique_topic("ticks")
    instances = tmp_path / "connectors"
    instances.mkdir()
    (instances / "ticks-file.toml").write_text(
        f'type = "file-sink"\ntopic = "{topic}"\nevent_type = "tests.connectors.Tick"\n'
        f'[settings]\npath = "{tmp_path / "ticks.jsonl"}"\n'
    )
    (instances / "receiver.toml").write_text(
        f'type = "demo-receiver"\n[settings]\nport = 0\nsecrets = ["{SECRET}"]\n'
    )
    deployment = Deployment(
        settings=settings, connectors_dir=instances, registry_port=0, partitions=2
    )
    async with deployment:
        assert deployment.registered == ["tests.connectors.Tick"]
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{deployment.registry_url}/subjects") as answer,
        ):
            assert await answer.json() == ["tests.connectors.Tick"]
        # The event catalogue, on the registry's port, with the version just registered.
        async with aiohttp.ClientSession() as http:
            async with http.get(deployment.catalogue_url) as page:
                assert page.status == 200
                html = await page.text()
            async with http.get(f"{deployment.registry_url}/asyncapi.json") as doc:
                assert doc.status == 200
                document = await doc.json()
        assert "tests.connectors.Tick" in html
        assert document["asyncapi"] == "3.0.0"
        assert any(channel["address"] == topic for channel in document["channels"].values())
        described = await kafka_admin.describe_topics([topic, f"{topic}.dlq"])
        assert [len(t["partitions"]) for t in described] == [2, 2]

        running = asyncio.create_task(deployment.run())
        assert await deployment.wait_ready(within=30)
        states = {s.name: s.state.value for s in deployment.status()}
        assert states == {"receiver": "running", "ticks-file": "running"}
        assert deployment.connector_urls()["receiver"].endswith("/webhooks")
        assert deployment.ingress_urls == []

        console = Console(record=True, width=140)
        view = LiveView(console)
        broker = Broker(deployment.bootstrap_servers, Provider.EXTERNAL)
        console.print(view._render(deployment, broker))
        shown = console.export_text()
        assert deployment.registry_url in shown
        assert "ticks-file" in shown
        assert "running" in shown

        deployment.stop()
        await running
    assert {s.state.value for s in deployment.status()} == {"stopped"}


async def test_a_breaking_catalogue_change_registers_nothing(
    tmp_path: Path, settings: Settings
) -> None:
    write_catalogue(tmp_path, Tick.avro_schema())
    async with Deployment(settings=settings, connectors_dir=tmp_path / "none", registry_port=0):
        pass
    # A new required field cannot read the old records: BACKWARD (the default) refuses it.
    changed = Tick.avro_schema()
    changed["fields"] = [*changed["fields"], {"name": "weight", "type": "int"}]
    write_catalogue(tmp_path, changed)
    deployment = Deployment(settings=settings, connectors_dir=tmp_path / "none", registry_port=0)
    with pytest.raises(IncompatibleSchema, match="nothing was registered") as refused:
        await deployment.start()
    assert any("weight" in message for message in refused.value.messages)
    async with KafkaLogRegistry(settings=settings) as registry:
        assert await registry.list_versions("tests.connectors.Tick") == [1]
    await deployment.close()
    assert deployment.status() == []  # no connector was started
