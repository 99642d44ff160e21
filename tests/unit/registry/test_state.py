"""The registry state machine: ids, versions, deletes, and the optimistic concurrency rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventplatform.errors import RegistryError, SubjectNotFound, VersionNotFound
from eventplatform.registry.base import CompatibilityLevel, Mode, SchemaReference
from eventplatform.registry.commands import (
    Command,
    Delete,
    Guard,
    Init,
    Register,
    SetCompatibility,
    SetMode,
)
from eventplatform.registry.state import Applied, RegistryState, Voided


def register(
    subject: str,
    text: str,
    *,
    version: int,
    read_upto: int,
    schema_id: int | None = None,
    guard: Guard | None = None,
    references: tuple[SchemaReference, ...] = (),
) -> Register:
    return Register(
        subject=subject,
        schema=text,
        references=references,
        fingerprint=f"exact:{text}",
        normalized_fingerprint=f"norm:{text}",
        version=version,
        schema_id=schema_id,
        read_upto=read_upto,
        guard=guard or Guard(subjects=(subject,), global_config=True),
    )


def delete(subject: str, versions: tuple[int, ...], *, permanent: bool, read_upto: int) -> Delete:
    return Delete(
        subject=subject,
        versions=versions,
        permanent=permanent,
        read_upto=read_upto,
        guard=Guard(subjects=(subject,)),
    )


def replay(*commands: Command) -> tuple[RegistryState, list[Applied | Voided]]:
    state = RegistryState()
    results = [state.apply(position, command) for position, command in enumerate(commands)]
    return state, results


def test_a_new_schema_id_is_the_position_of_its_registration() -> None:
    state, results = replay(Init(), register("a", '"int"', version=1, read_upto=1))
    assert results[1] == Applied(1, schema_id=1)
    assert state.version("a").id == 1
    stored = state.schema(1)
    assert stored is not None
    assert stored.schema == '"int"'


def test_a_reused_id_keeps_the_first_text() -> None:
    state, results = replay(
        Init(),
        register("a", '"int"', version=1, read_upto=1),
        register("b", '"int" ', version=1, read_upto=2, schema_id=1),
    )
    assert results[2] == Applied(2, schema_id=1)
    assert state.version("b").schema == '"int"'


def test_a_command_is_void_when_its_subject_changed_after_it_read() -> None:
    state, results = replay(
        Init(),
        register("a", '"int"', version=1, read_upto=1),
        register("a", '"long"', version=1, read_upto=1),
    )
    assert isinstance(results[2], Voided)
    assert "subject 'a' changed at 1" in results[2].reason
    assert state.versions("a") == [1]
    assert state.schema(2) is None


def test_commands_on_other_subjects_do_not_conflict() -> None:
    _, results = replay(
        Init(),
        register("a", '"int"', version=1, read_upto=1),
        register("b", '"long"', version=1, read_upto=1),
    )
    assert all(isinstance(r, Applied) for r in results)


def test_a_void_command_does_not_void_later_ones() -> None:
    _, results = replay(
        Init(),
        register("a", '"int"', version=1, read_upto=1),
        register("a", '"long"', version=1, read_upto=1),  # void: overtaken by position 1
        register("a", '"long"', version=2, read_upto=2),  # read position 1 only: applies
    )
    assert [type(r) for r in results] == [Applied, Applied, Voided, Applied]


def test_global_config_conflicts_with_global_config() -> None:
    level = CompatibilityLevel
    _, results = replay(
        Init(),
        SetCompatibility(
            subject=None, level=level.FULL, read_upto=1, guard=Guard(global_config=True)
        ),
        SetCompatibility(
            subject=None, level=level.NONE, read_upto=1, guard=Guard(global_config=True)
        ),
        SetCompatibility(subject="a", level=level.NONE, read_upto=1, guard=Guard(subjects=("a",))),
    )
    assert [type(r) for r in results] == [Applied, Applied, Voided, Applied]


def test_a_register_that_read_the_global_level_is_void_after_a_global_change() -> None:
    state, results = replay(
        Init(),
        SetCompatibility(
            subject=None,
            level=CompatibilityLevel.NONE,
            read_upto=1,
            guard=Guard(global_config=True),
        ),
        register("a", '"int"', version=1, read_upto=1),
        register("b", '"int"', version=1, read_upto=1, guard=Guard(subjects=("b",))),
    )
    assert [type(r) for r in results] == [Applied, Applied, Voided, Applied]
    assert state.subjects() == ["b"]


def test_a_register_is_void_when_a_referenced_subject_changed() -> None:
    ref = SchemaReference(name="x.A", subject="lib", version=1)
    _, results = replay(
        Init(),
        register("lib", '"int"', version=1, read_upto=1),
        delete("lib", (1,), permanent=False, read_upto=2),
        register(
            "app",
            '"long"',
            version=1,
            read_upto=2,
            references=(ref,),
            guard=Guard(subjects=("app", "lib")),
        ),
    )
    assert isinstance(results[3], Voided)


def test_a_register_for_a_version_that_is_not_next_is_void() -> None:
    state, results = replay(Init(), register("a", '"int"', version=2, read_upto=1))
    assert isinstance(results[1], Voided)
    assert state.subjects(deleted=True) == []


def test_a_register_reusing_an_unknown_id_is_void() -> None:
    _, results = replay(Init(), register("a", '"int"', version=1, read_upto=1, schema_id=42))
    assert isinstance(results[1], Voided)


def test_read_upto_after_its_own_position_is_void() -> None:
    _, results = replay(Init(), register("a", '"int"', version=1, read_upto=5))
    assert isinstance(results[1], Voided)


def test_positions_only_move_forward() -> None:
    state, _ = replay(Init(), register("a", '"int"', version=1, read_upto=1))
    with pytest.raises(ValueError, match="already applied"):
        state.apply(1, Init())
    state.advance_to(10)
    assert state.position == 10
    assert state.skip(12, "junk") == Voided(12, "junk")
    assert state.position == 13


def test_soft_delete_hides_versions_and_keeps_ids_resolvable() -> None:
    state, results = replay(
        Init(),
        register("a", '"int"', version=1, read_upto=1),
        register("a", '"long"', version=2, read_upto=2),
        delete("a", (2,), permanent=False, read_upto=3),
    )
    assert isinstance(results[3], Applied)
    assert state.versions("a") == [1]
    assert state.versions("a", deleted=True) == [1, 2]
    assert state.version("a").version == 1
    assert state.version("a", deleted=True).version == 2
    with pytest.raises(VersionNotFound):
        state.version("a", 2)
    assert state.schema(2) is not None
    assert state.next_version("a") == 3


def test_a_subject_with_only_deleted_versions_is_not_listed() -> None:
    state, _ = replay(
        Init(),
        register("a", '"int"', version=1, read_upto=1),
        delete("a", (1,), permanent=False, read_upto=2),
    )
    assert state.subjects() == []
    assert state.subjects(deleted=True) == ["a"]
    with pytest.raises(SubjectNotFound):
        state.versions("a")


def test_permanent_delete_removes_versions_config_and_hides_the_id() -> None:
    state, _ = replay(
        Init(),
        register("a", '"int"', version=1, read_upto=1),
        SetCompatibility(
            subject="a", level=CompatibilityLevel.NONE, read_upto=2, guard=Guard(subjects=("a",))
        ),
        delete("a", (1,), permanent=False, read_upto=3),
        delete("a", (1,), permanent=True, read_upto=4),
    )
    assert state.subjects(deleted=True) == []
    assert state.subject_level("a") is None
    assert state.schema(1) is None
    assert state.next_version("a") == 1
    known = state.known_schema('norm:"int"', normalize=True)
    assert known is not None
    assert known.schema_id == 1


def test_a_delete_of_versions_in_the_wrong_state_is_void() -> None:
    _, results = replay(
        Init(),
        register("a", '"int"', version=1, read_upto=1),
        delete("a", (1,), permanent=True, read_upto=2),
        delete("a", (3,), permanent=False, read_upto=2),
    )
    assert [type(r) for r in results] == [Applied, Applied, Voided, Voided]


def test_levels_resolve_subject_then_global_then_backward() -> None:
    state = RegistryState()
    assert state.level() is CompatibilityLevel.BACKWARD
    state.apply(
        0, SetCompatibility(subject=None, level=CompatibilityLevel.FULL, read_upto=0, guard=Guard())
    )
    state.apply(
        1, SetCompatibility(subject="a", level=CompatibilityLevel.NONE, read_upto=1, guard=Guard())
    )
    assert state.level("a") is CompatibilityLevel.NONE
    assert state.level("b") is CompatibilityLevel.FULL
    assert state.level() is CompatibilityLevel.FULL


def test_version_numbers_must_be_latest_or_positive() -> None:
    state, _ = replay(Init(), register("a", '"int"', version=1, read_upto=1))
    assert state.version("a", -1).version == 1
    with pytest.raises(RegistryError) as caught:
        state.version("a", 0)
    assert caught.value.error_code == 42202


def test_find_matches_by_the_requested_identity() -> None:
    state, _ = replay(Init(), register("a", '"int"', version=1, read_upto=1))
    assert state.find("a", 'norm:"int"', normalize=True) is not None
    assert state.find("a", 'norm:"int"', normalize=False) is None
    assert state.find("a", 'exact:"int"', normalize=False) is not None


_subjects = st.sampled_from(["a", "b"])
_commands = st.one_of(
    st.builds(
        lambda s, t, v, r, i: register(s, t, version=v, read_upto=r, schema_id=i),
        _subjects,
        st.sampled_from(['"int"', '"long"', '"string"']),
        st.integers(1, 4),
        st.integers(0, 12),
        st.one_of(st.none(), st.integers(0, 12)),
    ),
    st.builds(
        lambda s, v, p, r: delete(s, v, permanent=p, read_upto=r),
        _subjects,
        st.lists(st.integers(1, 4), min_size=1, max_size=2, unique=True).map(tuple),
        st.booleans(),
        st.integers(0, 12),
    ),
    st.builds(
        lambda s, lvl, r: SetCompatibility(
            subject=s, level=lvl, read_upto=r, guard=Guard(global_config=s is None)
        ),
        st.one_of(st.none(), _subjects),
        st.sampled_from(list(CompatibilityLevel)),
        st.integers(0, 12),
    ),
)


@given(st.lists(_commands, max_size=12))
def test_replay_is_deterministic_and_void_commands_change_nothing(commands: list[Command]) -> None:
    first, results = replay(Init(), *commands)
    second, _ = replay(Init(), *commands)
    assert first.snapshot() == second.snapshot()
    # Replaying only the applied commands, at their positions, gives the same state.
    pruned = RegistryState()
    log = [Init(), *commands]
    for result in results:
        if isinstance(result, Applied):
            pruned.apply(result.position, log[result.position])
    pruned.advance_to(len(log))
    assert pruned.snapshot() == first.snapshot()


def test_a_delete_of_a_version_referenced_since_it_was_decided_is_void() -> None:
    # Position 1 registers address v1; a delete of it is decided having read up to 2, but a
    # referrer registered in another subject at 2 lands first: the delete must not apply.
    ref = SchemaReference(name="shop.Address", subject="address", version=1)
    state, results = replay(
        Init(),
        register("address", "A", version=1, read_upto=1),
        register("customer", "C", version=1, read_upto=2, references=(ref,)),
        delete("address", (1,), permanent=False, read_upto=2),
    )
    assert isinstance(results[3], Voided)
    assert "'customer' version 1" in results[3].reason
    assert state.versions("address") == [1]
    assert state.referrers("address", [1], permanent=False) == [("customer", 1)]


def imported(subject: str, text: str, *, version: int, schema_id: int, read_upto: int) -> Register:
    return Register(
        subject=subject,
        schema=text,
        fingerprint=f"exact:{text}",
        normalized_fingerprint=f"norm:{text}",
        version=version,
        schema_id=schema_id,
        read_upto=read_upto,
        guard=Guard(subjects=(subject,), global_config=True),
        imported=True,
    )


def test_an_import_keeps_its_id_and_may_skip_versions_but_not_go_back() -> None:
    state, results = replay(
        Init(),
        imported("s", '"int"', version=5, schema_id=900, read_upto=1),
        imported("s", '"long"', version=3, schema_id=901, read_upto=2),  # below 6: void
        imported("t", '"long"', version=1, schema_id=900, read_upto=3),  # 900 is "int": void
        imported("t", '"int"', version=2, schema_id=900, read_upto=4),  # same schema: applied
    )
    assert [type(r) for r in results] == [Applied, Applied, Voided, Voided, Applied]
    assert results[1] == Applied(1, 900)
    assert state.versions("s") == [5]
    assert state.version("t").id == 900
    assert state.next_version("s") == 6


def test_a_new_id_never_lands_on_an_imported_one() -> None:
    # Position 2 would be the new schema's id, but an import already took id 2.
    _, results = replay(
        Init(),
        imported("s", '"int"', version=1, schema_id=2, read_upto=1),
        register("t", '"long"', version=1, read_upto=2, guard=Guard(subjects=("t",))),
        register("t", '"long"', version=1, read_upto=3, guard=Guard(subjects=("t",))),
    )
    assert isinstance(results[2], Voided)
    assert results[3] == Applied(3, 3)


def test_modes_and_their_removal_change_the_guarded_state() -> None:
    state, results = replay(
        Init(),
        SetMode(subject=None, mode=Mode.READONLY, read_upto=1, guard=Guard(global_config=True)),
        SetMode(subject="s", mode=Mode.IMPORT, read_upto=2, guard=Guard(subjects=("s",))),
        # Decided before the global mode changed, and reading it: void.
        register("t", '"int"', version=1, read_upto=1),
        SetCompatibility(subject="s", level=CompatibilityLevel.NONE, read_upto=4, guard=Guard()),
        SetCompatibility(subject="s", level=None, read_upto=5, guard=Guard()),
        SetMode(subject="s", mode=None, read_upto=6, guard=Guard()),
    )
    assert isinstance(results[3], Voided)
    assert state.mode() is Mode.READONLY
    assert state.mode("s") is Mode.READONLY  # its own IMPORT removed, the global one governs
    assert state.subject_mode("s") is None
    assert state.subject_level("s") is None
    snapshot = state.snapshot()
    assert (snapshot["global_mode"], snapshot["subject_modes"]) == ("READONLY", {})
