"""The Java + Maven broker path: start, failure reports, and no orphan JVM afterwards."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from eventplatform.devkafka import local
from eventplatform.devkafka.local import LocalKafka, probe_metadata
from eventplatform.errors import BrokerResolutionError, BrokerStartError

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VERSION = os.environ.get("EVENTPLATFORM_DEVKAFKA__VERSION", "4.4.0")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); look at its state
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def wait_dead(pid: int, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.2)
    return False


def test_start_answers_and_stop_leaves_nothing() -> None:
    kafka = LocalKafka(version=VERSION)
    with kafka:
        assert kafka.running
        host, port = kafka.bootstrap_servers.split(":")
        probe_metadata(host, int(port), timeout=5)
        pid = kafka.pid(1)
        assert pid is not None
        workdir = kafka.workdir
    assert not alive(pid)
    assert workdir is not None
    assert not workdir.exists()
    with pytest.raises(BrokerStartError, match="not running"):
        _ = kafka.bootstrap_servers


def test_port_taken_is_reported_with_the_log_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    ports = iter([busy, local.free_port()])
    monkeypatch.setattr(local, "free_port", lambda: next(ports))
    try:
        with pytest.raises(BrokerStartError) as info, LocalKafka(version=VERSION):
            pass
    finally:
        taken.close()
    message = str(info.value)
    assert "exited during start" in message
    assert "A port was taken" in message
    assert "Broker log" in message


def test_broker_exiting_during_start_shows_why() -> None:
    # A heap too small for the JVM to boot: the process exits at once.
    with pytest.raises(BrokerStartError) as info, LocalKafka(version=VERSION, heap="1m"):
        pass
    assert "heap" in str(info.value).lower()


def test_start_timeout_is_enforced_and_cleans_up() -> None:
    kafka = LocalKafka(version=VERSION, start_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(BrokerStartError, match=r"start timeout|within 0s|within 1s"):
        kafka.start()
    assert time.monotonic() - started < 60
    assert not kafka.running
    assert kafka.workdir is not None
    assert not kafka.workdir.exists()


def test_unresolvable_version_names_the_artifact(tmp_path: Path) -> None:
    with pytest.raises(BrokerResolutionError) as info:
        local.resolve_jars("0.0.1", cache_root=tmp_path, timeout=300)
    assert "org.apache.kafka:kafka_2.13:0.0.1" in str(info.value)
    assert not (tmp_path / "kafka" / "0.0.1" / "libs").exists()


def test_broker_dies_with_a_sigkilled_parent(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import time
            from eventplatform.devkafka.local import LocalKafka
            kafka = LocalKafka(version={VERSION!r})
            kafka.start()
            print(kafka.pid(1), flush=True)
            time.sleep(600)
            """
        )
    )
    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        java_pid = int(parent.stdout.readline())
        assert alive(java_pid)
        parent.kill()
        parent.wait()
    assert wait_dead(java_pid), "the broker outlived its SIGKILLed parent"


def test_cli_kafka_start_prints_bootstrap_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if "BOOTSTRAP_SERVERS" not in k}
    env["EVENTPLATFORM_DEVKAFKA__PROVIDER"] = "local"
    with subprocess.Popen(
        [sys.executable, "-m", "eventplatform", "kafka", "start"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    ) as cli:
        try:
            assert cli.stdout is not None
            line = cli.stdout.readline().strip()
            assert line.startswith("bootstrap=127.0.0.1:"), line
            host, port = line.removeprefix("bootstrap=").split(":")
            probe_metadata(host, int(port), timeout=5)
            cli.send_signal(signal.SIGTERM)
            assert cli.wait(timeout=60) == 0
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.wait()
    with pytest.raises(ConnectionRefusedError):
        probe_metadata(host, int(port), timeout=2)


def test_halt_and_resume_keep_port_and_data() -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def produce(servers: str) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait("kept", b"before-restart")
        finally:
            await producer.stop()

    async def consume(servers: str) -> list[bytes]:
        consumer = AIOKafkaConsumer("kept", bootstrap_servers=servers, auto_offset_reset="earliest")
        await consumer.start()
        try:
            batch = await consumer.getmany(timeout_ms=10_000)
        finally:
            await consumer.stop()
        return [m.value for records in batch.values() for m in records if m.value]

    with LocalKafka(version=VERSION) as kafka:
        servers = kafka.bootstrap_servers
        asyncio.run(produce(servers))
        kafka.halt(kill=True)
        assert not kafka.running
        kafka.resume()
        assert kafka.bootstrap_servers == servers
        assert asyncio.run(consume(servers)) == [b"before-restart"]


def test_broker_started_from_a_short_lived_thread_survives_it() -> None:
    import threading

    kafka = LocalKafka(version=VERSION)
    worker = threading.Thread(target=kafka.start)
    worker.start()
    worker.join()
    try:
        assert kafka.running
        # PR_SET_PDEATHSIG fires while the starting thread exits (prctl(2)); join() returns a
        # little before that, so wait for the thread's task to leave /proc: by then the
        # signal would have been sent. The broker then answers, and logged no signal.
        task = Path(f"/proc/self/task/{worker.native_id}")
        deadline = time.monotonic() + 30
        while task.exists():
            assert time.monotonic() < deadline, f"{task} still exists after 30s"
            time.sleep(0.02)
        host, port = kafka.bootstrap_servers.split(":")
        probe_metadata(host, int(port), timeout=5)
        assert kafka.running
        assert kafka.log_path is not None
        assert "due to signal" not in kafka.log_path.read_text()
    finally:
        kafka.stop()


def test_kafka_4_1_stays_selectable() -> None:
    # 4.4.0 is the default (issue 13); 4.1.x stays a supported choice of
    # EVENTPLATFORM_DEVKAFKA__VERSION, resolved and started from the same pom.
    with LocalKafka(version="4.1.1") as kafka:
        host, port = kafka.bootstrap_servers.split(":")
        probe_metadata(host, int(port), timeout=10)
        assert "Kafka version: 4.1.1" in kafka.log_path.read_text()


def test_cli_kafka_start_with_port_and_data_dir_keeps_records(tmp_path: Path) -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    port, data = local.free_port(), tmp_path / "kafka"
    env = {k: v for k, v in os.environ.items() if "BOOTSTRAP_SERVERS" not in k}
    env["EVENTPLATFORM_DEVKAFKA__PROVIDER"] = "local"
    command = [sys.executable, "-m", "eventplatform", "kafka", "start"]
    command += ["--port", str(port), "--data-dir", str(data)]

    async def produce(servers: str) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait("kept", b"before-restart")
        finally:
            await producer.stop()

    async def consume(servers: str) -> list[bytes]:
        consumer = AIOKafkaConsumer("kept", bootstrap_servers=servers, auto_offset_reset="earliest")
        await consumer.start()
        try:
            batch = await consumer.getmany(timeout_ms=10_000)
        finally:
            await consumer.stop()
        return [m.value for records in batch.values() for m in records if m.value]

    def run(work: Callable[[str], Coroutine[Any, Any, None]]) -> None:
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        ) as cli:
            try:
                assert cli.stdout is not None
                line = cli.stdout.readline().strip()
                assert line == f"bootstrap=127.0.0.1:{port}", line
                asyncio.run(work(line.removeprefix("bootstrap=")))
                cli.send_signal(signal.SIGTERM)
                assert cli.wait(timeout=60) == 0
            finally:
                if cli.poll() is None:
                    cli.kill()
                    cli.wait()

    run(produce)
    cluster_id = (data / "cluster.id").read_text()
    seen: list[bytes] = []

    async def read_back(servers: str) -> None:
        seen.extend(await consume(servers))

    run(read_back)
    assert seen == [b"before-restart"]
    assert (data / "cluster.id").read_text() == cluster_id


def test_taken_port_is_named_before_java_starts() -> None:
    from eventplatform.errors import PortInUse

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        kafka = LocalKafka(version=VERSION, port=busy)
        with pytest.raises(PortInUse) as info:
            kafka.start()
    assert info.value.port == busy
    assert f"port {busy} " in str(info.value)
    assert "EVENTPLATFORM_DEVKAFKA__PORT" in str(info.value)
    assert kafka.workdir is None
