"""A connector process SIGKILLed mid-stream and restarted: nothing lost, no duplicate effect.

The process is the real command line (``eventplatform connectors run``) on a deployment in a
temporary folder: a schema catalogue, a JSON-lines file source and a PostgreSQL outbox relay.
The test keeps writing lines and rows while the process runs, kills it with SIGKILL once both
streams are flowing, keeps writing, starts it again and waits for everything. Downstream, the
records are deduplicated by their event id (the idempotency key): exactly one per line and per
row must remain, each with the content it was written with.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from eventplatform.registry import KafkaLogRegistry
from tests.integration.connectors.helpers import Tick, TopicReader, eventually

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.slow]

LINES = 600
ROWS = 600
REPO = Path(__file__).resolve().parents[3]


def cli() -> list[str]:
    """``eventplatform connectors`` as a command line (the sub-app until it is mounted)."""
    from eventplatform.cli import app

    if any(getattr(group, "name", None) == "connectors" for group in app.registered_groups):
        return [sys.executable, "-m", "eventplatform", "connectors"]
    return [
        sys.executable,
        "-c",
        "from eventplatform.cli.connectors import app; app(prog_name='eventplatform connectors')",
    ]


@pytest.fixture
def deployment(tmp_path: Path, unique_topic: Callable[[str], str]) -> dict[str, str]:
    run = uuid.uuid4().hex[:8]
    names = {
        "file": f"ticks-file-{run}",
        "outbox": f"orders-outbox-{run}",
        "file_topic": unique_topic("ticks"),
        "outbox_topic": unique_topic("orders"),
        "table": f"outbox_{run}",
        "path": str(tmp_path / "ticks.jsonl"),
        "dir": str(tmp_path / "connectors"),
        "registry_topic": unique_topic("schemas"),
    }
    schema = tmp_path / "schemas" / "tests" / "connectors" / "Tick.avsc"
    schema.parent.mkdir(parents=True)
    schema.write_text(json.dumps(Tick.avro_schema()))
    instances = tmp_path / "connectors"
    instances.mkdir()
    (instances / "ticks.toml").write_text(
        f'name = "{names["file"]}"\n'
        'type = "file-source"\n'
        f'topic = "{names["file_topic"]}"\n'
        'event_type = "tests.connectors.Tick"\n'
        "[settings]\n"
        f'path = "{names["path"]}"\n'
        "poll_interval = 0.05\n"
        "max_batch = 50\n"
    )
    (instances / "orders.toml").write_text(
        f'name = "{names["outbox"]}"\n'
        'type = "postgres-outbox"\n'
        f'topic = "{names["outbox_topic"]}"\n'
        "[settings]\n"
        'dsn = "${OUTBOX_DSN}"\n'
        f'table = "{names["table"]}"\n'
        f'channel = "{names["table"]}"\n'
        "install = true\n"
        "batch_size = 25\n"
        "poll_interval = 0.2\n"
    )
    Path(names["path"]).touch()
    return names


class Process:
    """The connectors process, its output in files."""

    def __init__(self, command: list[str], env: dict[str, str], workdir: Path, run: int) -> None:
        self.out = workdir / f"run-{run}.out"
        self.err = workdir / f"run-{run}.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.popen = subprocess.Popen(command, env=env, cwd=workdir, stdout=out, stderr=err)

    async def ready(self) -> None:
        async def printed() -> bool:
            if self.popen.poll() is not None:
                raise AssertionError(f"exited {self.popen.returncode}: {self.err.read_text()}")
            return "ready connectors=" in self.out.read_text()

        await eventually(printed, within=60)

    def kill(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    async def stop(self) -> int:
        self.popen.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.popen.wait, 30)


@pytest.fixture
async def db(postgres_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        yield conn
    finally:
        await conn.close()


async def test_a_killed_connector_process_loses_nothing_and_duplicates_no_effect(
    deployment: dict[str, str],
    tmp_path: Path,
    kafka_bootstrap_servers: str,
    postgres_dsn: str,
    db: asyncpg.Connection,
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EVENTPLATFORM_")},
        "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "EVENTPLATFORM_REGISTRY__TOPIC": deployment["registry_topic"],
        "EVENTPLATFORM_PRODUCER__LINGER_MS": "1",
        "OUTBOX_DSN": postgres_dsn,
        "PYTHONPATH": str(REPO),
    }
    command = [*cli(), "run", "--dir", deployment["dir"]]
    table, path = deployment["table"], Path(deployment["path"])
    row_ids = [uuid.uuid4() for _ in range(ROWS)]

    def append(numbers: range) -> None:
        with path.open("ab") as f:
            for n in numbers:
                f.write(json.dumps({"n": n, "label": f"line {n}"}).encode() + b"\n")

    async def feed(lines: range, rows: range) -> None:
        for start in range(0, len(lines), 20):
            await asyncio.to_thread(append, lines[start : start + 20])
            batch = rows[start : start + 20]
            await db.executemany(
                f"INSERT INTO {table} (id, aggregatetype, aggregateid, type, payload) "
                "VALUES ($1, 'order', $2, 'OrderNoted', $3::jsonb)",
                [(row_ids[n], f"o-{n % 7}", json.dumps({"n": n})) for n in batch],
            )
            await asyncio.sleep(0.03)

    registry = KafkaLogRegistry(
        topic=deployment["registry_topic"], bootstrap_servers=kafka_bootstrap_servers
    )
    async with registry, TopicReader(kafka_bootstrap_servers, registry) as reader:
        first = Process(command, env, tmp_path, 1)
        try:
            await first.ready()
            await eventually(lambda: _table_exists(db, table), within=30)
            half = LINES // 2
            feeding = asyncio.create_task(feed(range(half), range(half)))

            async def flowing() -> bool:
                return (
                    await reader.end_offset(deployment["file_topic"]) >= 40
                    and await reader.end_offset(deployment["outbox_topic"]) >= 40
                )

            await eventually(flowing, within=30)
        finally:
            first.kill()  # mid-stream: the feed is still writing
        await feeding
        await feed(range(half, LINES), range(half, ROWS))

        second = Process(command, env, tmp_path, 2)
        try:
            await second.ready()

            async def drained() -> bool:
                left = await db.fetchval(f"SELECT count(*) FROM {table} WHERE published_at IS NULL")
                found = await reader.read(deployment["file_topic"], 10 * LINES, within=1.0)
                return left == 0 and len({r.headers["ce_id"] for r in found}) >= LINES

            await eventually(drained, within=60)
        finally:
            assert await second.stop() == 0, second.err.read_text()

        lines = await reader.read(deployment["file_topic"], 10 * LINES, within=2.0)
        rows = await reader.read(deployment["outbox_topic"], 10 * ROWS, within=2.0)
        # Deduplicated by idempotency key (ce_id), every line is there once, with its content.
        by_key: dict[str, set[int]] = defaultdict(set)
        for received in lines:
            by_key[received.headers["ce_id"]].add((await reader.decode(received, Tick)).n)

    assert len(by_key) == LINES
    assert all(len(values) == 1 for values in by_key.values())
    assert sorted(n for values in by_key.values() for n in values) == list(range(LINES))

    # Every row once per id, the id its own, with its payload.
    by_row: dict[str, set[bytes]] = defaultdict(set)
    for received in rows:
        by_row[received.headers["ce_id"]].add(received.value)
    assert set(by_row) == {str(i) for i in row_ids}
    for row_id, n in zip(row_ids, range(ROWS), strict=True):
        assert {json.loads(v)["n"] for v in by_row[str(row_id)]} == {n}
    print(
        f"lines: {len(lines)} records for {LINES} lines; rows: {len(rows)} records for {ROWS} rows"
    )


async def _table_exists(db: asyncpg.Connection, table: str) -> bool:
    return bool(await db.fetchval("SELECT to_regclass($1) IS NOT NULL", table))
