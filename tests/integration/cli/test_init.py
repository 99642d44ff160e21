"""The first hour as a new user walks it: ``eventplatform init`` → ``up`` → the printed curl →
handled → Ctrl-C → ``up`` again → the state kept (the README's "Your own deployment").

``up`` runs as a subprocess exactly as a new user runs it, with no broker configured: it
provisions its own, keeps its data in the project's ``var/kafka/`` and finds it again on the
second run (same cluster id, the first greeting's offsets and idempotency key kept). Ports are
free ones instead of the fixed defaults: the only change made to the printed curl line is its
port. The scaffolded project's own test then passes under pytest (on the test broker).
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.connectors.helpers import eventually
from tests.integration.docs.project import Background, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]


def cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventplatform", *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def greetings(database: Path) -> list[tuple[str, str]]:
    if not database.exists():
        return []
    db = sqlite3.connect(database)
    try:
        return db.execute("SELECT name, text FROM greetings").fetchall()
    except sqlite3.OperationalError:  # the service has not created its table yet
        return []
    finally:
        db.close()


async def test_init_up_curl_handled_stop_and_up_again(
    tmp_path: Path, kafka_bootstrap_servers: str
) -> None:
    timings: dict[str, float] = {}
    ingress = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EVENTPLATFORM_")},
        "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "INGRESS_PORT": str(ingress),
        "PYTHONPATH": str(REPO),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
    }
    name = f"shop{os.getpid()}x{time.monotonic_ns() % 10**6}"  # its own consumer group
    started = time.monotonic()
    made = await asyncio.to_thread(cli, "init", name, cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    timings["init"] = time.monotonic() - started
    project = tmp_path / name
    (curl,) = [
        line.strip() for line in made.stdout.splitlines() if line.strip().startswith("curl ")
    ]
    assert f"cd {name}" in made.stdout
    assert "eventplatform up" in made.stdout
    curl = curl.replace("127.0.0.1:8080", f"127.0.0.1:{ingress}")
    database = project / "eventplatform-idempotency.db"

    # No broker configured: up provisions its own in var/kafka, as for a new user.
    up_env = {k: v for k, v in env.items() if k != "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS"}
    ports = f"--kafka-port {free_port()} --controller-port {free_port()}"

    async def run_up(greeting: str, expected: list[tuple[str, str]], index: int) -> None:
        began = time.monotonic()
        up = Background(
            f"eventplatform up --no-tty {ports} --registry-port {free_port()}",
            project,
            up_env,
            index,
        )
        try:

            async def ready() -> bool:
                assert up.process.poll() is None, up.errors()
                return "ready " in up.output()

            await eventually(ready, within=120)
            timings[f"up {index}: ready"] = time.monotonic() - began
            sent = time.monotonic()
            answer = await asyncio.to_thread(
                subprocess.run,
                ["bash", "-c", curl.replace("Hello!", greeting)],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert answer.stdout.startswith("HTTP/1.1 202"), answer.stdout + answer.stderr
            assert re.search(r'\{"id": ?"[^"]+"\}', answer.stdout), answer.stdout

            async def handled() -> bool:
                return greetings(database) == expected

            await eventually(handled, within=60)
            timings[f"up {index}: curl → handled"] = time.monotonic() - sent
        finally:
            stopping = time.monotonic()
            code = await up.interrupt()
            timings[f"up {index}: Ctrl-C → exit"] = time.monotonic() - stopping
        assert code == 0, up.errors()
        assert up.output().splitlines()[-1] == "stopped"
        assert " ERROR " not in up.errors(), up.errors()
        assert " WARNING " not in up.errors(), up.errors()

    await run_up("Hello!", [("Ada", "Hello!")], 0)
    cluster_id = (project / "var" / "kafka" / "cluster.id").read_text()
    # Again: the same broker data; the first greeting is not handled twice, the second one is.
    await run_up("Hi again", [("Ada", "Hello!"), ("Ada", "Hi again")], 1)
    assert (project / "var" / "kafka" / "cluster.id").read_text() == cluster_id
    assert not (project / "var" / "up.json").exists()  # removed on a clean exit

    tests = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert "1 passed" in tests.stdout, tests.stdout + tests.stderr
    timings["total"] = time.monotonic() - started
    print("walk-through timings (s):", {k: round(v, 2) for k, v in timings.items()})


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    from eventplatform.cli.init import InitError, scaffold

    (tmp_path / "connectors").mkdir()
    (tmp_path / "connectors" / "greetings-in.toml").write_text("mine")
    with pytest.raises(InitError, match=r"connectors/greetings-in.toml; nothing was written"):
        scaffold(tmp_path, name="shop")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["connectors", "greetings-in.toml"]
    assert (tmp_path / "connectors" / "greetings-in.toml").read_text() == "mine"
