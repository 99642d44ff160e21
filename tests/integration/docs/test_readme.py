"""Every block of README.md runs as written (see :mod:`tests.docblocks` for how).

The deployment ``make up`` runs (the repository's ``connectors/`` and ``schemas/``) is started
with ``eventplatform up`` on the test broker; the shell blocks then talk to it (its ports are
free ones: ``127.0.0.1:8080`` in a block is rewritten to the ingress's), the tour's snippets
run in one namespace in a fresh working directory, and the test file of "Testing your own
services" runs under pytest in that project.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from tests.docblocks import REPO, blocks
from tests.integration.connectors.helpers import eventually
from tests.integration.docs.project import Background, Project, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_readme_blocks_run_as_written(
    tmp_path: Path,
    kafka_bootstrap_servers: str,
    unique_topic: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ingress, receiver = free_port(), free_port()
    project = Project(
        tmp_path / "project",
        kafka_bootstrap_servers,
        DEMO_INGRESS_PORT=str(ingress),
        DEMO_RECEIVER_PORT=str(receiver),
    )
    for folder in ("connectors", "schemas", "scripts"):
        shutil.copytree(REPO / folder, project.root / folder)
    project.substitutions["127.0.0.1:8080"] = f"127.0.0.1:{ingress}"
    # The tour's snippets run in this process, as in `python -m asyncio` in the project.
    monkeypatch.chdir(project.root)
    monkeypatch.setenv("EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS", kafka_bootstrap_servers)
    monkeypatch.setenv("EVENTPLATFORM_CONSUMER__GROUP_ID", unique_topic("billing"))

    # What `make up` runs.
    up = Background(
        f"eventplatform up --no-tty --registry-port {free_port()}", project.root, project.env, 99
    )
    try:

        async def ready() -> bool:
            assert up.process.poll() is None, up.errors()
            return "ready " in up.output()

        await eventually(ready, within=120)
        await project.run(blocks("README.md"))

        curl, signed = project.shell_output
        assert curl.startswith("HTTP/1.1 202"), curl
        first, second = (json.loads(line.split(" ", 1)[1]) for line in signed.splitlines())
        assert first == second  # the replay answers with the first event's id

        tour = project.namespace
        ids = {str(tour["event"].order_id)} | {str(event.order_id) for event in tour["more"]}
        app = tour["app"]
        running = asyncio.create_task(app.run())
        database = project.root / "eventplatform-idempotency.db"

        async def handled() -> bool:
            assert not running.done() or running.result() is None
            if not database.exists():
                return False
            with sqlite3.connect(database) as conn:
                try:
                    rows = conn.execute("SELECT order_id, amount FROM payments").fetchall()
                except sqlite3.OperationalError:  # the startup hook has not run yet
                    return False
            conn.close()
            amounts = {order_id: Decimal(str(amount)) for order_id, amount in rows}
            return ids <= amounts.keys() and amounts[str(tour["event"].order_id)] == 9

        try:
            await eventually(handled, within=60)
        finally:
            app.stop()
            await running
        assert app.stats.handled >= 3
        assert app.stats.dead_lettered == 0

        # "Testing your own services": the test file, run by pytest in the fresh project.
        tests = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
            cwd=project.root,
            env=project.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "1 passed" in tests.stdout, tests.stdout + tests.stderr
        assert "not natively supported" not in tests.stdout
        assert "PytestUnknownMarkWarning" not in tests.stdout
    finally:
        code = await up.interrupt()
        await project.stop_background()
    assert code == 0, up.errors()
    assert up.output().splitlines()[-1] == "stopped"
