"""The in-process registry's lifecycle and its log."""

from __future__ import annotations

import pytest

from eventplatform.errors import RegistryError, ResourceStateError
from eventplatform.registry import CompatibilityLevel, MemoryRegistry, Mode, SchemaRegistry
from eventplatform.registry.commands import Init, Register


def test_memory_registry_implements_the_protocol() -> None:
    assert isinstance(MemoryRegistry(), SchemaRegistry)


async def test_use_before_start_is_a_resource_state_error() -> None:
    registry = MemoryRegistry()
    with pytest.raises(ResourceStateError, match=r"before start\(\)"):
        await registry.get_by_id(1)
    with pytest.raises(ResourceStateError, match=r"before start\(\)"):
        await registry.register("s", '"int"')


async def test_use_after_close_is_a_resource_state_error() -> None:
    async with MemoryRegistry() as registry:
        await registry.register("s", '"int"')
    await registry.close()  # idempotent
    with pytest.raises(ResourceStateError, match=r"after close\(\)"):
        await registry.list_subjects()
    with pytest.raises(ResourceStateError, match="closed"):
        await registry.start()


async def test_log_starts_with_init_so_no_schema_gets_id_zero() -> None:
    async with MemoryRegistry() as registry:
        registered = await registry.register("s", '"int"')
        assert registered.id == 1
        assert isinstance(registry.log[0], Init)
        assert isinstance(registry.log[1], Register)


async def test_ids_are_log_positions() -> None:
    async with MemoryRegistry() as registry:
        await registry.register("a", '"int"')  # position 1
        await registry.set_compatibility(CompatibilityLevel.FULL)  # position 2
        second = await registry.register("b", '"long"')  # position 3
        assert second.id == 3


async def test_empty_subject_is_refused() -> None:
    async with MemoryRegistry() as registry:
        with pytest.raises(RegistryError, match="invalid subject"):
            await registry.register(" ", '"int"')


async def test_invalid_level_is_refused_with_confluent_code() -> None:
    async with MemoryRegistry() as registry:
        with pytest.raises(RegistryError) as caught:
            await registry.set_compatibility("SOMETIMES")  # type: ignore[arg-type]
        assert caught.value.error_code == 42203


async def test_a_new_schema_skips_a_position_taken_by_an_imported_id() -> None:
    # Ids are log positions; an id imported ahead of the log must not be handed out again.
    async with MemoryRegistry() as registry:
        await registry.set_mode(Mode.IMPORT, "imported")  # position 1
        imported = await registry.register("imported", '"int"', schema_id=4, version=1)  # 2
        await registry.delete_mode("imported")  # 3
        fresh = await registry.register("fresh", '"string"')  # 4 is void: id 4 is taken
        assert imported.id == 4
        assert fresh.id == 5
        assert (await registry.get_by_id(4)).schema == '"int"'
        assert (await registry.get_by_id(5)).schema == '"string"'
        assert isinstance(registry.log[4], Register)
        assert len(registry.log) == 6
