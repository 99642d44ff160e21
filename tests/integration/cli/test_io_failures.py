"""``produce`` writes nothing for bad input; ``consume`` fails when a record was undecodable.

On the real broker; the ``consume`` exit status is also checked through the real entry point
(``python -m eventplatform``) in a subprocess, ended by ``--idle-timeout`` and by Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from eventplatform.cli import io
from tests.integration.cli.conftest import Invoke, Platform
from tests.integration.cli.test_io import ORDER_PLACED, create_topic, order, records_in

ROOT = Path(__file__).parents[3]


def test_a_file_with_a_line_that_is_not_utf8_writes_nothing(
    cli: Invoke,
    catalogue: Path,
    platform: Platform,
    unique_topic: Callable[[str], str],
    tmp_path: Path,
) -> None:
    topic = unique_topic("orders")
    create_topic(cli, topic)
    good = [json.dumps(order(n, f"c-{n}")).encode() for n in (1, 2, 4)]
    latin1 = json.dumps(order(3, "c-3")).encode().replace(b'"c-3"', b'"caf\xe9"')
    path = tmp_path / "orders.jsonl"
    path.write_bytes(b"\n".join([good[0], good[1], latin1, good[2]]) + b"\n")

    result = cli("produce", topic, "--type", ORDER_PLACED, "-i", str(path))

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # typer.Exit, not a UnicodeDecodeError
    assert "line 3: not UTF-8 text: byte 0xe9 at byte" in result.stderr
    assert "nothing was written" in result.stderr
    assert records_in(platform.bootstrap_servers, topic) == 0


def test_an_event_too_large_for_a_later_chunk_writes_nothing(
    cli: Invoke,
    catalogue: Path,
    platform: Platform,
    unique_topic: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Chunks of 2: before the size was checked with the other problems, lines 1-4 went out
    # in two chunks and line 5 then failed with RecordTooLarge, leaving 4 events written.
    monkeypatch.setattr(io, "CHUNK", 2)
    monkeypatch.setenv("EVENTPLATFORM_PRODUCER__MAX_REQUEST_SIZE", "2000")
    topic = unique_topic("orders")
    create_topic(cli, topic)
    large = order(5, "c-5")
    large["note"] = "x" * 3000
    lines = [json.dumps(order(n, f"c-{n}")) for n in range(1, 5)] + [json.dumps(large)]

    result = cli("produce", topic, "--type", ORDER_PLACED, input="\n".join(lines))

    assert result.exit_code == 1
    assert "line 5: the event is " in result.stderr
    assert "over producer.max_request_size (2000 bytes)" in result.stderr
    assert records_in(platform.bootstrap_servers, topic) == 0
    # The same input without the large line goes out in chunks and is all written.
    written = cli("produce", topic, "--type", ORDER_PLACED, input="\n".join(lines[:4]))
    assert written.exit_code == 0, written.output
    assert records_in(platform.bootstrap_servers, topic) == 4


def _topic_with_an_undecodable_record(cli: Invoke, platform: Platform, topic: str) -> None:
    create_topic(cli, topic)

    async def write_garbage() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=platform.bootstrap_servers)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"not avro", key=b"k")
        finally:
            await producer.stop()

    asyncio.run(write_garbage())
    produced = cli("produce", topic, "--type", ORDER_PLACED, input=json.dumps(order(1, "c-1")))
    assert produced.exit_code == 0, produced.output


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "eventplatform", *args]


def _environment() -> dict[str, str]:
    # The platform fixture's EVENTPLATFORM_* settings, and this checkout's package.
    return {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250"}


def test_consume_ended_by_idle_timeout_exits_1_after_an_undecodable_record(
    cli: Invoke, catalogue: Path, platform: Platform, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("mixed")
    _topic_with_an_undecodable_record(cli, platform, topic)

    result = subprocess.run(
        _command("consume", topic, "--from-beginning", "--idle-timeout", "3"),
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"NotWireFormat: topic '{topic}', partition 0, offset 0:" in result.stderr
    assert "1 records printed, 1 undecodable" in result.stderr
    assert [json.loads(line)["offset"] for line in result.stdout.splitlines()] == [1]


def test_consume_ended_by_ctrl_c_exits_1_after_an_undecodable_record(
    cli: Invoke,
    catalogue: Path,
    platform: Platform,
    unique_topic: Callable[[str], str],
    tmp_path: Path,
) -> None:
    topic = unique_topic("mixed")
    _topic_with_an_undecodable_record(cli, platform, topic)
    stdout_path, stderr_path = tmp_path / "stdout", tmp_path / "stderr"

    with stdout_path.open("w") as stdout, stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            _command("consume", topic, "--from-beginning"),
            env=_environment(),
            stdout=stdout,
            stderr=stderr,
        )
        try:
            # Both records seen: the good one printed, the bad one reported.
            deadline = time.monotonic() + 60
            while not (
                "NotWireFormat" in stderr_path.read_text() and stdout_path.read_text().strip()
            ):
                assert process.poll() is None, stderr_path.read_text()
                assert time.monotonic() < deadline, "consume did not get to both records"
                time.sleep(0.1)
            process.send_signal(signal.SIGINT)
            code = process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    errors = stderr_path.read_text()
    assert code == 1, errors
    assert "Traceback" not in errors
    assert "1 records printed, 1 undecodable" in errors
