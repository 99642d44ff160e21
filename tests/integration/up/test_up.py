"""``eventplatform up`` end to end, as a subprocess on the repository's demo deployment.

The command provisions a broker of its own (the test's broker settings are removed from its
environment), serves the registry, registers ``schemas/`` and runs ``connectors/``. The test
posts an OrderPlaced the way the README's ``curl`` does, and one signed the Standard Webhooks
way (with the independent ``standardwebhooks`` package, and with ``scripts/send-signed-webhook``),
sees each at the demo receiver and in ``var/orders.jsonl``, then sends SIGTERM: the process
exits 0 and its broker is gone.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from standardwebhooks.webhooks import Webhook

from tests.integration.connectors.helpers import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
SIGNED_SECRET = "whsec_ZXZlbnRwbGF0Zm9ybSBkZW1vOiBpbmdyZXNzIGtleSE="  # connectors/orders-signed


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def up_command() -> list[str]:
    """``eventplatform up`` (the sub-app directly until it is mounted)."""
    from eventplatform.cli import app

    names = {getattr(command, "name", None) for command in app.registered_commands}
    for group in app.registered_groups:
        names |= {c.name for c in getattr(group.typer_instance, "registered_commands", [])}
    if "up" in names:
        return [sys.executable, "-m", "eventplatform", "up"]
    return [sys.executable, "-c", "from eventplatform.cli.up import app; app()"]


def order(customer: str) -> dict[str, object]:
    return {
        "order_id": str(uuid.uuid4()),
        "customer_id": customer,
        "items": [{"sku": "TEA-1", "quantity": 2, "unit_price": "4.50"}],
        "total": "9.00",
        "currency": "EUR",
        "placed_at": "2026-05-01T12:00:00Z",
    }


def broker_pids(port: int) -> set[int]:
    """Java processes running a Kafka broker that listens on ``port``."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kafka.Kafka" not in argv:
            continue
        properties = Path(argv[argv.index(b"kafka.Kafka") + 1].decode())
        try:
            if f"127.0.0.1:{port}" in properties.read_text():
                found.add(int(proc.name))
        except OSError:
            continue
    return found


def start(command: list[str], workdir: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start ``command`` in ``workdir``, its output in ``up.out`` and ``up.err`` there."""
    with (workdir / "up.out").open("wb") as stdout, (workdir / "up.err").open("wb") as stderr:
        return subprocess.Popen(command, cwd=workdir, env=env, stdout=stdout, stderr=stderr)


def alive(pids: set[int]) -> set[int]:
    """The processes of ``pids`` that still exist."""
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()}


def lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


async def test_up_runs_the_demo_and_stops_cleanly(tmp_path: Path) -> None:
    shutil.copytree(REPO / "connectors", tmp_path / "connectors")
    shutil.copytree(REPO / "schemas", tmp_path / "schemas")
    ingress_port, receiver_port, registry_port = free_port(), free_port(), free_port()
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not (k.startswith("EVENTPLATFORM_") and not k.startswith("EVENTPLATFORM_DEVKAFKA"))
            and k != "KAFKA_BOOTSTRAP_SERVERS"
        },
        "DEMO_INGRESS_PORT": str(ingress_port),
        "DEMO_RECEIVER_PORT": str(receiver_port),
        "PYTHONPATH": str(REPO),
    }
    command = [*up_command(), "--no-tty", "--registry-port", str(registry_port)]
    # Fixed default ports (9092, 9093) are for users; tests run in parallel.
    command += ["--kafka-port", str(free_port()), "--controller-port", str(free_port())]
    out, err = tmp_path / "up.out", tmp_path / "up.err"
    process = start(command, tmp_path, env)
    try:

        async def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"up exited {process.returncode}: {err.read_text()}")
            return "ready " in out.read_text()

        await eventually(ready, within=180)
        line = next(x for x in out.read_text().splitlines() if x.startswith("ready "))
        fields = dict(part.split("=", 1) for part in line.split()[1:])
        assert fields["ingress"] == f"http://127.0.0.1:{ingress_port}"
        assert fields["registry"] == f"http://127.0.0.1:{registry_port}"
        assert set(fields["connectors"].split(",")) == {
            "demo-receiver",
            "orders",
            "orders-file",
            "orders-out",
            "orders-signed",
        }
        broker_port = int(fields["bootstrap"].rsplit(":", 1)[1])
        brokers = broker_pids(broker_port)

        sent = [order("c-plain"), order("c-signed")]
        async with aiohttp.ClientSession() as http:
            # The README's curl: an API key, a JSON body.
            async with http.post(
                f"{fields['ingress']}/hooks/orders", json=sent[0], headers={"X-API-Key": "demo"}
            ) as answer:
                assert answer.status == 202, await answer.text()
                plain_id = (await answer.json())["id"]
            async with http.post(f"{fields['ingress']}/hooks/orders", json=sent[0]) as answer:
                assert answer.status == 401
            # The signed route, signed by an independent implementation.
            body = json.dumps(sent[1])
            msg_id = f"msg_{uuid.uuid4().hex}"
            now = datetime.now(UTC)
            headers = {
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": Webhook(SIGNED_SECRET).sign(msg_id, now, body),
                "content-type": "application/json",
            }
            async with http.post(
                f"{fields['ingress']}/hooks/orders-signed", data=body, headers=headers
            ) as answer:
                assert answer.status == 202, await answer.text()
                signed_id = (await answer.json())["id"]
            async with http.get(f"{fields['registry']}/subjects") as answer:
                assert "com.example.orders.OrderPlaced" in await answer.json()

        script = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(REPO / "scripts" / "send-signed-webhook")],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert script.returncode == 0, script.stderr
        assert script.stdout.startswith("202 ")
        script_id = json.loads(script.stdout.split(" ", 1)[1])["id"]

        ids = {plain_id, signed_id, script_id}
        received, written = tmp_path / "var" / "received.jsonl", tmp_path / "var" / "orders.jsonl"

        async def flowed() -> bool:
            return ids <= {r["webhook_id"] for r in lines(received)} and ids <= {
                w["id"] for w in lines(written)
            }

        await eventually(flowed, within=60)
        out_of_file = {w["id"]: w["data"] for w in lines(written)}
        assert out_of_file[plain_id]["order_id"] == sent[0]["order_id"]
        assert out_of_file[signed_id]["customer_id"] == "c-signed"
        assert "demo receiver demo-receiver got com.example.orders.OrderPlaced" in err.read_text()
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 90)
    assert code == 0, err.read_text()
    assert out.read_text().splitlines()[-1] == "stopped"
    assert not alive(brokers)
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", broker_port))
