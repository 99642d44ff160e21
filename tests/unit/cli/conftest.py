"""Fixtures for CLI tests without a broker: an in-memory registry behind the commands.

``memory_registry`` replaces :data:`eventplatform.cli._clients.registry_factory` so that every
command of a test talks to one :class:`MemoryRegistry`; ``catalogue`` is a copy of the sample
catalogue the test may change; ``cli`` runs a root app with the sub-apps mounted as the
``eventplatform`` command mounts them.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import pytest
import typer
from typer.testing import CliRunner, Result

from eventplatform.cli import _clients, apps, io, schemas, topics
from eventplatform.registry.base import SchemaRegistry
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.settings import Settings

SAMPLE_CATALOGUE = Path(__file__).parents[3] / "schemas"

Invoke = Callable[..., Result]


class _Shared:
    """Enters as a started registry and leaves it open, so state outlives one command."""

    def __init__(self, registry: MemoryRegistry) -> None:
        self.registry = registry

    async def __aenter__(self) -> SchemaRegistry:
        await self.registry.start()
        return self.registry

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


@pytest.fixture
def memory_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryRegistry]:
    """The registry every command of the test uses."""
    registry = MemoryRegistry()

    def factory(settings: Settings) -> _Shared:
        return _Shared(registry)

    monkeypatch.setattr(_clients, "registry_factory", factory)
    yield registry
    asyncio.run(registry.close())


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, and no Kafka cluster or registry in the environment."""
    monkeypatch.chdir(tmp_path)
    for name in (
        "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS",
        "KAFKA_BOOTSTRAP_SERVERS",
        "EVENTPLATFORM_REGISTRY__URL",
    ):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def catalogue(workdir: Path) -> Path:
    """A copy of the sample catalogue at ``schemas/`` of the working directory."""
    target = workdir / "schemas"
    shutil.copytree(SAMPLE_CATALOGUE, target, ignore=shutil.ignore_patterns("*.md"))
    return target


def build_app() -> typer.Typer:
    """A root app with the sub-apps mounted as ``eventplatform`` mounts them."""
    root = typer.Typer()
    root.add_typer(schemas.app, name="schemas")
    root.add_typer(topics.app, name="topics")
    root.add_typer(io.app)
    root.add_typer(apps.app, name="apps")
    return root


@pytest.fixture
def cli() -> Invoke:
    """``cli("schemas", "register", …, input=…)``: run a command, wide enough for tables."""
    app = build_app()
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input, env={"COLUMNS": "250"})

    return invoke
