"""``eventplatform catalogue build`` as a process, against a real Confluent REST registry
(eventplatform's REST server over an in-memory registry, on a loopback port)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from eventplatform.registry.base import CompatibilityLevel
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.registry.rest_server import serve, server_url
from eventplatform.schema import load_catalogue
from tests.unit.catalogue.conftest import CONNECTORS, REPO, SCHEMAS

PLACED = "com.example.orders.OrderPlaced"


async def test_build_reads_versions_from_a_rest_registry(tmp_path: Path) -> None:
    registry = MemoryRegistry()
    await registry.start()
    schema = load_catalogue(SCHEMAS)[PLACED].resolved_json()
    await registry.register("orders-value", schema)
    await registry.set_compatibility(CompatibilityLevel.FORWARD_TRANSITIVE, "orders-value")
    runner = await serve(registry, "127.0.0.1", 0, username="catalogue", password="s3cret-pw")
    url = server_url(runner)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS")
    }
    env |= {
        "PYTHONPATH": str(REPO),
        "EVENTPLATFORM_REGISTRY__URL": url,
        # Only named in the document: with a registry URL set, nothing connects to Kafka.
        "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS": "kafka.invalid:9092",
        "EVENTPLATFORM_REGISTRY__USERNAME": "catalogue",
        "EVENTPLATFORM_REGISTRY__PASSWORD": "s3cret-pw",
    }
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from eventplatform.cli import main; main()",
            "catalogue", "build", "--out", str(tmp_path / "site"), "--dir", str(CONNECTORS),
            "--app", "tests.unit.catalogue.billing_app:app",
            cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    finally:
        await runner.cleanup()
        await registry.close()

    text = output.decode()
    assert process.returncode == 0, text
    assert "versions from the registry" in text
    page = (tmp_path / "site/index.html").read_text()
    document = json.loads((tmp_path / "site/asyncapi.json").read_text())
    assert '<td class="name">orders-value</td>' in page
    assert "v1 · FORWARD_TRANSITIVE" in page
    binding = document["servers"]["kafka"]["bindings"]["kafka"]
    assert binding["schemaRegistryUrl"] == url
    assert "s3cret-pw" not in page + text + json.dumps(document)
