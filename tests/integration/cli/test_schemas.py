"""``schemas register`` and ``check`` against the Kafka-log registry on the real broker."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

from eventplatform.registry.kafkalog import KafkaLogRegistry
from tests.integration.cli.conftest import Invoke, Platform

ORDER_PLACED = "com/example/orders/OrderPlaced.avsc"


def add_field(catalogue: Path, relative: str, field: dict[str, Any]) -> None:
    path = catalogue / relative
    schema = json.loads(path.read_text())
    schema["fields"].append(field)
    path.write_text(json.dumps(schema, indent=2))


def registered_versions(servers: str, topic: str) -> dict[str, list[int]]:
    """What a fresh client replaying the registry's log topic sees."""

    async def read() -> dict[str, list[int]]:
        async with KafkaLogRegistry(bootstrap_servers=servers, topic=topic) as registry:
            return {s: await registry.list_versions(s) for s in await registry.list_subjects()}

    return asyncio.run(read())


def test_register_is_idempotent_and_refuses_a_breaking_change(
    cli: Invoke, catalogue: Path, platform: Platform
) -> None:
    first = cli("schemas", "register", str(catalogue))
    again = cli("schemas", "register", str(catalogue))
    add_field(catalogue, ORDER_PLACED, {"name": "channel", "type": "string"})
    breaking = cli("schemas", "register", str(catalogue))

    assert first.exit_code == 0, first.output
    assert first.stdout.count(" new ") == 5
    assert again.exit_code == 0, again.output
    assert again.stdout.count("unchanged") == 5
    assert breaking.exit_code == 1
    assert "reader field 'channel' has no default and is missing from version 1" in breaking.stderr
    assert "nothing was registered" in breaking.stderr
    versions = registered_versions(platform.bootstrap_servers, platform.registry_topic)
    assert len(versions) == 5
    assert set(map(tuple, versions.values())) == {(1,)}


def test_a_compatible_change_registers_a_new_version(cli: Invoke, catalogue: Path) -> None:
    cli("schemas", "register", str(catalogue))
    add_field(
        catalogue, ORDER_PLACED, {"name": "coupon", "type": ["null", "string"], "default": None}
    )

    result = cli("schemas", "register", str(catalogue))
    listed = cli("schemas", "list")

    assert result.exit_code == 0, result.output
    assert "new version: fields added: coupon" in result.stdout
    row = next(line for line in listed.stdout.splitlines() if "OrderPlaced" in line)
    assert row.split()[3] == "2"


def test_check_against_git_and_registry_in_a_repository(cli: Invoke, catalogue: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=catalogue.parent,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "catalogue")
    assert cli("schemas", "register", str(catalogue)).exit_code == 0
    add_field(catalogue, ORDER_PLACED, {"name": "channel", "type": "string"})

    result = cli("schemas", "check", str(catalogue), "--against-git", "HEAD", "--against-registry")

    assert result.exit_code == 1
    assert "missing from the version at HEAD (READER_FIELD_MISSING_DEFAULT_VALUE" in result.stderr
    assert "missing from version 1 (READER_FIELD_MISSING_DEFAULT_VALUE" in result.stderr
    assert "2 problem(s) found" in result.stderr
