"""``check_and_register``: the one "check the catalogue, then register" that ``schemas register``
and ``eventplatform up`` share: all or nothing, unchanged schemas left alone, progress told."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from eventplatform.deployment import register_catalogue
from eventplatform.errors import IncompatibleSchema
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.schema import load_catalogue
from eventplatform.schema.evolution import Status, check_and_register

SAMPLE_CATALOGUE = Path(__file__).parents[3] / "schemas"
PLACED = "com.example.orders.OrderPlaced"


@pytest.fixture
def catalogue(tmp_path: Path) -> Path:
    target = tmp_path / "schemas"
    shutil.copytree(SAMPLE_CATALOGUE, target, ignore=shutil.ignore_patterns("*.md"))
    return target


@pytest.fixture
async def registry() -> AsyncIterator[MemoryRegistry]:
    async with MemoryRegistry() as started:
        yield started


def edit_placed(catalogue: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = catalogue / "com/example/orders/OrderPlaced.avsc"
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema))


async def test_new_schemas_are_registered_and_unchanged_ones_left_alone(
    catalogue: Path, registry: MemoryRegistry
) -> None:
    entries = list(load_catalogue(catalogue))
    first = await check_and_register(registry, entries)
    assert [e.status for e in first.evolutions] == [Status.NEW] * len(entries)
    assert list(first.registered) == [e.full_name for e in entries]

    log_length = len(registry.log)
    again = await check_and_register(registry, entries)
    assert [e.status for e in again.evolutions] == [Status.UNCHANGED] * len(entries)
    assert again.registered == {}
    assert len(registry.log) == log_length


async def test_a_breaking_change_registers_nothing_and_says_why(
    catalogue: Path, registry: MemoryRegistry
) -> None:
    await check_and_register(registry, list(load_catalogue(catalogue)))
    edit_placed(catalogue, lambda s: s["fields"].append({"name": "warehouse", "type": "string"}))
    entries = list(load_catalogue(catalogue))
    log_length = len(registry.log)

    done = await check_and_register(registry, entries)

    assert done.registered == {}
    assert len(registry.log) == log_length
    assert done.problems
    assert all(problem.startswith(f"{PLACED}: ") for problem in done.problems)
    assert "warehouse" in " ".join(done.problems)


async def test_a_compatible_change_is_a_new_version_and_a_dry_run_registers_nothing(
    catalogue: Path, registry: MemoryRegistry
) -> None:
    await check_and_register(registry, list(load_catalogue(catalogue)))
    optional = {"name": "warehouse", "type": ["null", "string"], "default": None}
    edit_placed(catalogue, lambda s: s["fields"].append(optional))
    entries = list(load_catalogue(catalogue))

    dry = await check_and_register(registry, entries, dry_run=True)
    assert [e.subject for e in dry.evolutions if e.status is Status.CHANGED] == [PLACED]
    assert dry.registered == {}
    assert await registry.list_versions(PLACED) == [1]

    stages: list[tuple[str, int]] = []
    ticks: list[str] = []

    def stage(what: str, total: int) -> Callable[[], None]:
        stages.append((what, total))
        return lambda: ticks.append(what)

    done = await check_and_register(registry, entries, stage=stage)
    assert list(done.registered) == [PLACED]
    assert done.registered[PLACED].version == 2
    assert stages == [("comparing with the registry", len(entries)), ("registering", 1)]
    assert ticks.count("registering") == 1
    assert ticks.count("comparing with the registry") == len(entries)


async def test_the_deployment_raises_for_a_breaking_catalogue(
    catalogue: Path, registry: MemoryRegistry
) -> None:
    names = [e.full_name for e in load_catalogue(catalogue)]
    assert await register_catalogue(registry, catalogue) == names
    assert await register_catalogue(registry, catalogue) == []
    edit_placed(catalogue, lambda s: s["fields"].append({"name": "warehouse", "type": "string"}))
    with pytest.raises(IncompatibleSchema, match="nothing was registered") as caught:
        await register_catalogue(registry, catalogue)
    assert caught.value.messages
    assert await registry.list_versions(PLACED) == [1]
