"""The CLI's shape: version, help, and errors as one readable paragraph."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from eventplatform import __version__
from eventplatform.cli import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"eventplatform {__version__}"


def test_kafka_help_lists_start() -> None:
    result = runner.invoke(app, ["kafka", "--help"])
    assert result.exit_code == 0
    assert "start" in result.stdout


def test_bad_setting_is_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS", "no-port")
    result = runner.invoke(app, ["kafka", "start"])
    assert result.exit_code == 1
    assert "kafka.bootstrap_servers" in result.stderr
    assert "Traceback" not in result.stderr


def test_pytest_plugin_is_registered_for_users() -> None:
    from importlib.metadata import entry_points

    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("eventplatform") == "eventplatform.testing.pytest_plugin"
