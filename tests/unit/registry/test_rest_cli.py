"""``registry serve`` refuses to run without a Kafka cluster that outlives it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from eventplatform.cli.registry import app


def test_serve_without_a_cluster_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no eventplatform.toml or pyproject settings here
    monkeypatch.delenv("EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)

    result = CliRunner().invoke(app, ["serve", "--port", "0"])

    assert result.exit_code == 1
    assert "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_names_the_serve_command() -> None:
    result = CliRunner().invoke(app, ["--help"])

    assert result.exit_code == 0
    assert "serve" in result.stdout
