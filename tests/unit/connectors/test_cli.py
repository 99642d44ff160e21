"""``eventplatform connectors list`` on a deployment folder (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from eventplatform.cli.connectors import app


def test_list_shows_types_and_instances_and_fails_on_an_invalid_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # rich wraps table cells to the terminal width
    instances = tmp_path / "connectors"
    instances.mkdir()
    (instances / "ticks.toml").write_text(
        'type = "file-source"\ntopic = "ticks"\n'
        'event_type = "tests.integration.connectors.helpers:Tick"\n'
        '[settings]\npath = "/tmp/ticks.jsonl"\n'
    )
    runner = CliRunner()
    ok = runner.invoke(app, ["list", "--dir", str(instances)])
    assert ok.exit_code == 0, ok.output
    for text in ("webhook-ingress", "postgres-outbox", "file-source", "ticks", "/tmp/ticks.jsonl"):
        assert text in ok.output
    (instances / "broken.toml").write_text('type = "nope"\n')
    bad = runner.invoke(app, ["list", "--dir", str(instances)])
    assert bad.exit_code == 1
    assert "invalid" in bad.output
    assert "no connector type 'nope'" in bad.output


def test_run_without_instances_is_an_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", "--dir", str(tmp_path)])
    assert result.exit_code == 1


def test_a_misspelt_setting_is_named_once_by_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    instances = tmp_path / "connectors"
    instances.mkdir()
    (instances / "ticks.toml").write_text(
        'type = "file-source"\ntopic = "ticks"\n'
        'event_type = "tests.integration.connectors.helpers:Tick"\n'
        '[settings]\npath = "/tmp/ticks.jsonl"\nkey_feild = "id"\n'
    )

    result = CliRunner().invoke(app, ["list", "--dir", str(instances)])

    assert result.exit_code == 1
    assert "settings.key_feild: Extra inputs are not permitted" in result.output
    assert result.output.count("key_feild") == 1
    assert "Traceback" not in result.output
