"""The CLI in an 80-column terminal: tables keep identifiers whole, flags show no ``<bool>``
metavar, and a file outside the catalogue gets a hint to pass ``--schemas``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from eventplatform.cli.up import LiveView
from eventplatform.connectors.sdk.status import ConnectorState, ConnectorStatus

REPO = Path(__file__).resolve().parents[3]


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EVENTPLATFORM_")},
        "COLUMNS": "80",
        "PYTHONPATH": str(REPO),
    }
    return subprocess.run(
        [sys.executable, "-m", "eventplatform", *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_connectors_list_keeps_every_identifier_whole_at_80_columns() -> None:
    listed = cli("connectors", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for identifier in (
        "demo-receiver",
        "webhook-ingress",
        "webhook-egress",
        "orders-signed",
        "com.example.orders.OrderPlaced",
        "eventplatform.connectors.builtin.ingress:WebhookIngress",
    ):
        assert any(identifier in line for line in lines), identifier


def test_the_live_view_table_keeps_names_whole_at_80_columns() -> None:
    console = Console(width=80, record=True, color_system=None)
    view = LiveView(console)
    statuses = [
        ConnectorStatus(
            name=name,
            type=kind,
            role="source",
            state=ConnectorState.RUNNING,
            records=123456,
            errors=0,
            last_error="ConnectionRefusedError: cannot reach 127.0.0.1:8090 after 5 attempts",
        )
        for name, kind in (("orders-signed", "webhook-ingress"), ("demo-receiver", "demo-receiver"))
    ]
    console.print(view._table(statuses, rates=False))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for identifier in ("orders-signed", "webhook-ingress", "demo-receiver", "running"):
        assert identifier in text, text


@pytest.mark.parametrize(
    "command", [("up",), ("consume",), ("topics", "create"), ("serve",), ("init",)]
)
def test_flags_show_no_bool_metavar(command: tuple[str, ...]) -> None:
    helped = cli(*command, "--help")
    assert helped.returncode == 0, helped.stderr
    assert "--help" in helped.stdout
    assert "<bool>" not in helped.stdout


def test_diff_of_a_file_outside_the_catalogue_says_to_pass_schemas(tmp_path: Path) -> None:
    folder = tmp_path / "elsewhere" / "com" / "x"
    folder.mkdir(parents=True)
    (folder / "B.avsc").write_text(
        '{"type": "record", "name": "B", "namespace": "com.x", "fields": []}'
    )
    (folder / "A.avsc").write_text(
        '{"type": "record", "name": "A", "namespace": "com.x",'
        ' "fields": [{"name": "b", "type": "com.x.B"}]}'
    )
    diffed = cli("schemas", "diff", str(folder / "A.avsc"), "--against-registry", cwd=tmp_path)
    assert diffed.returncode == 1
    message = " ".join(diffed.stderr.split())
    assert "unknown type 'com.x.B'" in message
    assert "pass --schemas DIR" in message
