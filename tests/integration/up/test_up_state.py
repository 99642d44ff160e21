"""``eventplatform up`` keeps its state in the deployment and can be found from another shell.

Each test runs ``up`` as a subprocess on a copy of the demo deployment, with a broker of its
own (the test broker's settings are removed from its environment) on explicit free ports: the
fixed defaults (9092, 9093, 8081, 8080) are for users, and tests run in parallel.
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from standardwebhooks.webhooks import Webhook

from tests.integration.connectors.helpers import eventually
from tests.integration.up.test_up import SIGNED_SECRET, free_port, order

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
SUBJECT = "com.example.orders.OrderPlaced"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the test broker (so that ``up`` provisions its own)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("EVENTPLATFORM_") and not k.startswith("EVENTPLATFORM_DEVKAFKA"))
        and k != "KAFKA_BOOTSTRAP_SERVERS"
    }
    return {**env, "PYTHONPATH": str(REPO), **extra}


@dataclass
class Ports:
    kafka: int
    controller: int
    registry: int
    ingress: int
    receiver: int

    @classmethod
    def free(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), free_port(), free_port())

    def env(self) -> dict[str, str]:
        return clean_env(DEMO_INGRESS_PORT=str(self.ingress), DEMO_RECEIVER_PORT=str(self.receiver))

    def options(self) -> list[str]:
        return [
            "--kafka-port",
            str(self.kafka),
            "--controller-port",
            str(self.controller),
            "--registry-port",
            str(self.registry),
        ]


def deployment(tmp_path: Path) -> Path:
    root = tmp_path / "deployment"
    shutil.copytree(REPO / "connectors", root / "connectors")
    shutil.copytree(REPO / "schemas", root / "schemas")
    return root


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    out: Path
    err: Path

    def ready_fields(self) -> dict[str, str]:
        line = next(x for x in self.out.read_text().splitlines() if x.startswith("ready "))
        return dict(part.split("=", 1) for part in line.split()[1:])


@contextmanager
def up(root: Path, ports: Ports, *extra: str, run: int = 0) -> Iterator[Running]:
    """``eventplatform up --no-tty`` in ``root``; SIGTERM at the end, which must exit 0."""
    out, err = root / f"up{run}.out", root / f"up{run}.err"
    command = [sys.executable, "-m", "eventplatform", "up", "--no-tty", *ports.options(), *extra]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(command, cwd=root, env=ports.env(), stdout=stdout, stderr=stderr)
    try:
        yield Running(process, out, err)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(90)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, err.read_text()


async def wait_ready(running: Running) -> dict[str, str]:
    async def ready() -> bool:
        if running.process.poll() is not None:
            raise AssertionError(
                f"up exited {running.process.returncode}: {running.err.read_text()}"
            )
        return "ready " in running.out.read_text()

    await eventually(ready, within=180)
    return running.ready_fields()


def signed(body: str, msg_id: str) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(SIGNED_SECRET).sign(msg_id, now, body),
        "content-type": "application/json",
    }


async def records_with_id(servers: str, topic: str, event_id: str) -> int:
    """How many records of ``topic`` carry CloudEvents id ``event_id`` (read to its end)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=servers, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        count = 0

        def tally(batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
            nonlocal count
            for records in batch.values():
                for record in records:
                    count += dict(record.headers or ()).get("ce_id") == event_id.encode()

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not consumer.assignment():  # without a group every partition comes at once
            assert loop.time() < deadline, f"no partitions of {topic} assigned"
            tally(await consumer.getmany(timeout_ms=200))
        ends = await consumer.end_offsets(list(consumer.assignment()))
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            assert loop.time() < deadline, f"{topic} not read to its end"
            tally(await consumer.getmany(timeout_ms=200))
        return count
    finally:
        await consumer.stop()


async def schema_id(registry: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{registry}/subjects/{SUBJECT}/versions/latest") as answer,
    ):
        assert answer.status == 200, await answer.text()
        return int((await answer.json())["id"])


async def test_up_keeps_topics_schemas_and_ingress_keys_across_restarts(tmp_path: Path) -> None:
    root, ports = deployment(tmp_path), Ports.free()
    state_file = root / "var" / "up.json"
    body = json.dumps(order("c-kept"))
    msg_id = f"msg_{uuid.uuid4().hex}"

    with up(root, ports, run=1) as first:
        fields = await wait_ready(first)
        assert fields["bootstrap"] == f"127.0.0.1:{ports.kafka}"
        await eventually(lambda: _exists(state_file), within=30)
        state = json.loads(state_file.read_text())
        assert state["pid"] == first.process.pid
        assert state["bootstrap_servers"] == f"127.0.0.1:{ports.kafka}"
        assert state["registry_url"] == f"http://127.0.0.1:{ports.registry}"
        assert state["ingress_urls"] == [f"http://127.0.0.1:{ports.ingress}"]

        # A second shell in the deployment folder, with no broker configured, finds it.
        listed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "eventplatform", "topics", "list"],
            cwd=root,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        assert "orders.dlq" in listed.stdout

        ids_before = await schema_id(state["registry_url"])
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{fields['ingress']}/hooks/orders-signed", data=body, headers=signed(body, msg_id)
            ) as answer,
        ):
            assert answer.status == 202, await answer.text()
            event_id = (await answer.json())["id"]
        assert await records_with_id(fields["bootstrap"], "orders", event_id) == 1
    assert not state_file.exists(), "up left its state file behind"
    assert (root / "var" / "kafka" / "cluster.id").exists()
    cluster_id = (root / "var" / "kafka" / "cluster.id").read_text()

    with up(root, ports, run=2) as second:
        fields = await wait_ready(second)
        assert "reusing the KRaft storage" in second.err.read_text()
        assert await schema_id(fields["registry"]) == ids_before
        # The same signed request, replayed after the restart: answered, nothing written.
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{fields['ingress']}/hooks/orders-signed", data=body, headers=signed(body, msg_id)
            ) as answer,
        ):
            assert answer.status == 202, await answer.text()
            assert (await answer.json())["id"] == event_id
            assert answer.headers.get("Idempotent-Replayed") == "true"
        assert await records_with_id(fields["bootstrap"], "orders", event_id) == 1
    assert (root / "var" / "kafka" / "cluster.id").read_text() == cluster_id

    with up(root, ports, "--fresh", run=3) as third:
        fields = await wait_ready(third)
        assert await records_with_id(fields["bootstrap"], "orders", event_id) == 0
    assert (root / "var" / "kafka" / "cluster.id").read_text() != cluster_id


async def _exists(path: Path) -> bool:
    return await asyncio.to_thread(path.exists)


@pytest.mark.parametrize("taken", ["kafka", "registry", "ingress"])
def test_a_taken_port_is_named_with_the_setting_to_change(tmp_path: Path, taken: str) -> None:
    root, ports = deployment(tmp_path), Ports.free()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", getattr(ports, taken)))
        holder.listen()
        result = subprocess.run(
            [sys.executable, "-m", "eventplatform", "up", "--no-tty", *ports.options()],
            cwd=root,
            env=ports.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 1, result.stderr
    message = " ".join(result.stderr.split())
    assert f"port {getattr(ports, taken)} " in message
    assert "PortInUse" in message
    expected = {
        "kafka": "--kafka-port or EVENTPLATFORM_UP__KAFKA_PORT",
        "registry": "--registry-port or EVENTPLATFORM_UP__REGISTRY_PORT",
        "ingress": "settings.port in",
    }[taken]
    assert expected in message
    assert "Traceback" not in result.stderr
    assert not (root / "var" / "kafka").exists(), "started something despite the taken port"
