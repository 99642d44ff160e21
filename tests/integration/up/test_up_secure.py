"""``eventplatform up --security sasl_ssl``: every component on credentials, and the CLI beside it.

``up`` starts a SASL_SSL development broker (one node: the same listeners, CA, SCRAM users and
authoriser as the cluster, at a third of the cost), and its registry, catalogue and connectors
connect as the admin. ``var/up.json`` tells the CLI run in the same folder how to connect (CA,
user, the password *file*), and holds no secret; ``serve`` of an app with no Kafka settings
uses it too. Nothing ``up`` prints shows the admin password
or a webhook signing secret.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.integration.connectors.helpers import eventually
from tests.integration.up.test_up import REPO, SIGNED_SECRET, free_port, order, start, up_command

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def check_state(state_file: Path) -> str:
    """Check what ``var/up.json`` says about the secured cluster; the admin password."""
    text = state_file.read_text()
    state = json.loads(text)
    assert state["security_protocol"] == "SASL_SSL"
    assert state["sasl_mechanism"] == "SCRAM-SHA-512"
    assert state["sasl_username"] == "admin"
    assert Path(state["ssl_cafile"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    password_file = Path(state["sasl_password_file"])
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = password_file.read_text().strip()
    assert len(password) >= 16
    assert password not in text
    assert '"sasl_password"' not in text  # only the file is named
    return password


READER = """
from pathlib import Path

from eventplatform import Context, EventApp
from eventplatform.demo.events import OrderPlaced

app = EventApp("secure-reader")


@app.handle(OrderPlaced, topic="orders")
async def note(event: OrderPlaced, ctx: Context) -> None:
    with Path("served.txt").open("a") as out:
        out.write(event.customer_id + "\\n")
"""


def start_serve(workdir: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``eventplatform serve reader:app`` in ``workdir``, output in ``serve.out``/``serve.err``."""
    command = [sys.executable, "-m", "eventplatform", "serve", "reader:app"]
    with (workdir / "serve.out").open("wb") as stdout, (workdir / "serve.err").open("wb") as err:
        return subprocess.Popen(command, cwd=workdir, env=env, stdout=stdout, stderr=err)


def secrets_in_logs(root: Path, password: str) -> list[Path]:
    return [log for log in root.rglob("*.log") if password in log.read_text(errors="replace")]


async def test_up_with_sasl_ssl_connects_everything_and_the_cli_beside_it(tmp_path: Path) -> None:
    shutil.copytree(REPO / "connectors", tmp_path / "connectors")
    shutil.copytree(REPO / "schemas", tmp_path / "schemas")
    ingress_port, receiver_port = free_port(), free_port()
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not (k.startswith("EVENTPLATFORM_") and not k.startswith("EVENTPLATFORM_DEVKAFKA"))
            and k != "KAFKA_BOOTSTRAP_SERVERS"
        },
        "EVENTPLATFORM_DEVKAFKA__PROVIDER": "local",
        "DEMO_INGRESS_PORT": str(ingress_port),
        "DEMO_RECEIVER_PORT": str(receiver_port),
        "PYTHONPATH": str(REPO),
    }
    command = [*up_command(), "--no-tty", "--security", "sasl_ssl", "--registry-port", "0"]
    command += ["--kafka-port", str(free_port()), "--controller-port", str(free_port())]
    command += ["--log-format", "json"]
    out, err = tmp_path / "up.out", tmp_path / "up.err"
    process = start(command, tmp_path, env)
    state_file = tmp_path / "var" / "up.json"
    try:

        async def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"up exited {process.returncode}: {err.read_text()}")
            return state_file.exists()

        await eventually(ready, within=240)
        password = check_state(state_file)

        # The connectors run on the secured broker: a signed webhook flows through them.
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"http://127.0.0.1:{ingress_port}/hooks/orders",
                json=order("c-secure"),
                headers={"X-API-Key": "demo"},
            ) as answer,
        ):
            assert answer.status == 202, await answer.text()

        # The CLI beside up: no Kafka settings at all, up.json says how to connect.
        cli_env = {k: v for k, v in env.items() if not k.startswith("EVENTPLATFORM_")}
        listed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "eventplatform", "topics", "list"],
            cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert "orders" in listed.stdout
        consumed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "eventplatform", "consume", "orders", "--from-beginning",
             "--max", "1", "--idle-timeout", "60"],
            cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert consumed.returncode == 0, consumed.stderr
        assert "c-secure" in consumed.stdout

        # `serve` beside up, for an app that configures no cluster: up.json's, as admin.
        (tmp_path / "reader.py").write_text(READER)
        served_out, served_err = tmp_path / "serve.out", tmp_path / "serve.err"
        reader = start_serve(tmp_path, cli_env)
        try:
            served = tmp_path / "served.txt"

            async def handled() -> bool:
                if reader.poll() is not None:
                    raise AssertionError(
                        f"serve exited {reader.returncode}: {served_err.read_text()}"
                    )
                return served.exists() and "c-secure" in served.read_text()

            await eventually(handled, within=120)
        finally:
            if reader.poll() is None:
                reader.send_signal(signal.SIGTERM)
            served_code = await asyncio.to_thread(reader.wait, 60)
        assert served_code == 0, served_err.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 90)
    assert code == 0, err.read_text()[-3000:]
    everything = out.read_text() + err.read_text() + listed.stdout + listed.stderr
    everything += consumed.stdout + consumed.stderr
    everything += served_out.read_text() + served_err.read_text()
    for secret in (password, SIGNED_SECRET):
        assert secret not in everything
    assert secrets_in_logs(tmp_path / "var" / "kafka", password) == []
