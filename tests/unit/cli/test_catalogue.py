"""``eventplatform catalogue build`` on a copy of the demo deployment."""

from __future__ import annotations

import asyncio
import json
import shutil
import stat
from pathlib import Path
from types import TracebackType

import pytest
from typer.testing import CliRunner, Result

from eventplatform.cli import _clients
from eventplatform.cli import app as root_app
from eventplatform.errors import RegistryError
from eventplatform.registry.memory import MemoryRegistry

REPO = Path(__file__).parents[3]
APP = "tests.unit.catalogue.billing_app:app"


@pytest.fixture
def deployment(workdir: Path) -> Path:
    """The demo's schemas/ and connectors/ in the working directory."""
    shutil.copytree(REPO / "schemas", workdir / "schemas")
    shutil.copytree(REPO / "connectors", workdir / "connectors")
    return workdir


def build(*args: str) -> Result:
    return CliRunner().invoke(root_app, ["catalogue", "build", *args], env={"COLUMNS": "250"})


def test_build_with_the_registry(deployment: Path, memory_registry: MemoryRegistry) -> None:
    schema = (deployment / "schemas/com/example/customers/CustomerRegistered.avsc").read_text()

    async def register() -> None:
        await memory_registry.start()
        await memory_registry.register("com.example.customers.CustomerRegistered", schema)

    asyncio.run(register())
    result = build("--out", "site", "--app", APP, "--title", "Shop events")

    assert result.exit_code == 0, result.output
    assert "4 event types, 2 topics, 2 webhook routes; versions from the registry" in result.output
    page = (deployment / "site/index.html").read_text()
    document = json.loads((deployment / "site/asyncapi.json").read_text())
    assert "<h1>Shop events</h1>" in page
    assert "Versions and compatibility levels from the schema registry" in page
    assert "v1 · BACKWARD" in page
    assert document["info"]["title"] == "Shop events"
    assert "billing.bill.orders" in document["operations"]
    for name in ("index.html", "asyncapi.json"):
        assert stat.S_IMODE((deployment / "site" / name).stat().st_mode) == 0o644


class _Unreachable:
    async def __aenter__(self) -> MemoryRegistry:
        raise RegistryError("http://127.0.0.1:9/subjects: connection refused")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


def test_an_unreachable_registry_leaves_the_catalogue_files_clearly_labelled(
    deployment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_clients, "registry_factory", lambda settings: _Unreachable())
    monkeypatch.setenv("EVENTPLATFORM_REGISTRY__URL", "http://user:hunter2@127.0.0.1:9")

    result = build("--out", "site")

    assert result.exit_code == 0, result.output
    assert "versions from the catalogue files" in result.output
    assert "connection refused" in result.output
    page = (deployment / "site/index.html").read_text()
    assert "from the catalogue files" in page
    assert "connection refused" in page
    assert "hunter2" not in page + result.output + (deployment / "site/asyncapi.json").read_text()


def test_no_registry_configured(deployment: Path) -> None:
    result = build("--out", "site")

    assert result.exit_code == 0, result.output
    assert "no registry is configured" in result.output
    assert (deployment / "site/asyncapi.json").is_file()


def test_a_bad_app_spec_is_a_usage_error(deployment: Path) -> None:
    result = build("--out", "site", "--app", "no_such_module_here:app", "--no-registry")

    assert result.exit_code == 2
    assert "--app: app 'no_such_module_here:app' cannot be imported" in result.output
    assert not (deployment / "site").exists()


def test_a_broken_connector_file_is_named_and_nothing_is_written(deployment: Path) -> None:
    broken = deployment / "connectors/orders-in.toml"
    broken.write_text(broken.read_text().replace('topic = "orders"', 'topic = ["orders"]'))

    result = build("--out", "site", "--no-registry")

    assert result.exit_code == 1
    assert "orders-in.toml: topic" in result.output
    assert "Traceback" not in result.output
    assert not (deployment / "site").exists()


def test_settings_name_the_kafka_server(deployment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_clients, "registry_factory", lambda settings: _Unreachable())
    monkeypatch.setenv("EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")

    result = build("--out", "site")

    assert result.exit_code == 0, result.output
    servers = json.loads((deployment / "site/asyncapi.json").read_text())["servers"]
    assert servers["kafka"]["host"] == "kafka-1:9092"
    assert "kafka-2:9092" in servers["kafka"]["description"]
