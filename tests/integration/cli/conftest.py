"""CLI commands against the session's real broker, with the Kafka-log registry.

``platform`` points the settings (environment variables, as a user would) at the broker and at
a registry log topic of the test's own, and makes an empty directory the working directory;
``catalogue`` copies the sample catalogue into it; ``cli`` runs a root app with the sub-apps
mounted as the ``eventplatform`` command mounts them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
import typer
from typer.testing import CliRunner, Result

from eventplatform.cli import io, schemas, topics

SAMPLE_CATALOGUE = Path(__file__).parents[3] / "schemas"

Invoke = Callable[..., Result]


class Platform(NamedTuple):
    """Where the commands of a test go: the broker, and the registry's log topic in it."""

    bootstrap_servers: str
    registry_topic: str


@pytest.fixture
def platform(
    kafka_bootstrap_servers: str,
    unique_topic: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Platform:
    """The settings (environment variables, as a user sets them) point at the test's broker."""
    found = Platform(kafka_bootstrap_servers, unique_topic("schemas"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVENTPLATFORM_REGISTRY__URL", raising=False)
    monkeypatch.setenv("EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS", found.bootstrap_servers)
    monkeypatch.setenv("EVENTPLATFORM_REGISTRY__TOPIC", found.registry_topic)
    monkeypatch.setenv("EVENTPLATFORM_PRODUCER__SOURCE", "/tests/cli")
    return found


@pytest.fixture
def catalogue(platform: Platform, tmp_path: Path) -> Path:
    """A copy of the sample catalogue at ``schemas/`` of the working directory."""
    target = tmp_path / "schemas"
    shutil.copytree(SAMPLE_CATALOGUE, target, ignore=shutil.ignore_patterns("*.md"))
    return target


@pytest.fixture
def cli() -> Invoke:
    """``cli("schemas", "register", …, input=…)``: run a command, wide enough for tables."""
    app = typer.Typer()
    app.add_typer(schemas.app, name="schemas")
    app.add_typer(topics.app, name="topics")
    app.add_typer(io.app)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input, env={"COLUMNS": "250"})

    return invoke
