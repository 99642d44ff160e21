"""``eventplatform connectors status`` and ``offsets show|reset`` against the real broker."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from eventplatform.cli.connectors import app
from eventplatform.connectors import (
    ConnectorRuntime,
    ConnectorSpec,
    OffsetStore,
    SourcePosition,
)
from eventplatform.registry import MemoryRegistry
from eventplatform.settings import load_settings
from tests.integration.connectors.helpers import CountingConfig, CountingSource, Tick
from tests.waiting import until


@pytest.fixture
def cli_env(kafka_bootstrap_servers: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS", kafka_bootstrap_servers)
    monkeypatch.setenv("COLUMNS", "300")


def test_offsets_are_shown_and_reset(cli_env: None) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"

    async def commit() -> None:
        async with OffsetStore(settings=load_settings()) as store:
            await store.commit(
                name,
                [
                    SourcePosition({"path": "/a.jsonl"}, {"position": 10}),
                    SourcePosition({"path": "/b.jsonl"}, {"position": 20}),
                ],
            )

    asyncio.run(commit())
    runner = CliRunner()
    shown = runner.invoke(app, ["offsets", "show", name, "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == [
        {"partition": {"path": "/a.jsonl"}, "offset": {"position": 10}},
        {"partition": {"path": "/b.jsonl"}, "offset": {"position": 20}},
    ]
    one = runner.invoke(
        app, ["offsets", "reset", name, "--partition", '{"path": "/a.jsonl"}', "-y"]
    )
    assert one.exit_code == 0, one.output
    assert "removed 1 committed offset" in one.output
    rest = runner.invoke(app, ["offsets", "reset", name], input="y\n")
    assert "removed 1 committed offset" in rest.output
    empty = runner.invoke(app, ["offsets", "show", name])
    assert f"connector {name!r} has no committed offsets" in empty.output


def test_status_shows_what_a_runtime_reported(
    cli_env: None, unique_topic: Callable[[str], str]
) -> None:
    name = f"cli-status-{uuid.uuid4().hex[:8]}"
    spec = ConnectorSpec(
        name=name,
        type_name="counting",
        connector_class=CountingSource,
        config=CountingConfig(count=3),
        topic=unique_topic("ticks"),
        event_type=Tick,
    )

    async def run_once() -> None:
        async with MemoryRegistry() as registry:
            runtime = ConnectorRuntime([spec], settings=load_settings(), registry=registry)
            task = asyncio.create_task(runtime.run())
            try:
                await until(lambda: runtime.status()[0].records == 3, what="three records")
            finally:
                runtime.stop()
                await task

    asyncio.run(run_once())
    result = CliRunner().invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    (mine,) = [s for s in json.loads(result.output) if s["name"] == name]
    assert (mine["state"], mine["records"], mine["type"]) == ("stopped", 3, "counting")
    table = CliRunner().invoke(app, ["status"])
    assert name in table.output
