"""The registry contract: what every backend of the registry protocol must do.

Collected through ``test_contract.py`` and run once per backend of the ``registry`` fixture
(``conftest.py``'s ``REGISTRY_FACTORIES``). Each test gets a registry with an empty state.
Semantics are Confluent Schema Registry's
(https://docs.confluent.io/platform/current/schema-registry/develop/api.html).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from eventplatform.errors import (
    IncompatibleSchema,
    InvalidSchema,
    OperationNotPermitted,
    ReferenceExists,
    RegistryError,
    SchemaNotFound,
    SettingNotFound,
    SubjectNotFound,
    VersionNotFound,
)
from eventplatform.registry.base import CompatibilityLevel, Mode, SchemaReference, SchemaRegistry

pytestmark = pytest.mark.integration

L = CompatibilityLevel
SUBJECT = "orders-value"


def record(*fields: dict[str, Any], name: str = "Order", indent: int | None = None) -> str:
    document = {"type": "record", "name": name, "namespace": "shop", "fields": list(fields)}
    return json.dumps(document, indent=indent)


def field(name: str, type_: Any = "int", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


V1 = record(field("id", "string"))
V2 = record(field("id", "string"), field("note", "string", default=""))
V3 = record(field("id", "string"), field("note", "string", default=""), field("qty", default=0))
BREAKS_V1 = record(field("id", "string"), field("amount", "double"))
ADDRESS = json.dumps(
    {
        "type": "record",
        "name": "Address",
        "namespace": "shop",
        "fields": [{"name": "city", "type": "string"}],
    }
)
CUSTOMER = json.dumps(
    {
        "type": "record",
        "name": "Customer",
        "namespace": "shop",
        "fields": [{"name": "home", "type": "shop.Address"}],
    }
)


# -- registering --------------------------------------------------------------------------


async def test_register_returns_version_1_and_a_positive_id(registry: SchemaRegistry) -> None:
    registered = await registry.register(SUBJECT, V1)
    assert registered.subject == SUBJECT
    assert registered.version == 1
    assert registered.id > 0
    assert json.loads(registered.schema) == json.loads(V1)


async def test_registering_again_returns_the_same_version_and_id(registry: SchemaRegistry) -> None:
    first = await registry.register(SUBJECT, V1)
    again = await registry.register(SUBJECT, V1)
    assert (again.version, again.id) == (first.version, first.id)
    assert await registry.list_versions(SUBJECT) == [1]


async def test_whitespace_and_key_order_make_the_same_schema(registry: SchemaRegistry) -> None:
    first = await registry.register(SUBJECT, V1)
    reordered = json.dumps(dict(reversed(list(json.loads(V1).items()))), indent=4)
    for text in (record(field("id", "string"), indent=2), reordered):
        for normalize in (True, False):
            again = await registry.register(SUBJECT, text, normalize=normalize)
            assert (again.version, again.id) == (1, first.id)


async def test_normalize_ignores_docs_but_not_defaults(registry: SchemaRegistry) -> None:
    first = await registry.register(SUBJECT, V2)
    documented = json.loads(V2) | {"doc": "An order, documented."}
    same = await registry.register(SUBJECT, json.dumps(documented), normalize=True)
    assert (same.version, same.id) == (1, first.id)
    new_default = record(field("id", "string"), field("note", "string", default="none"))
    changed = await registry.register(SUBJECT, new_default, normalize=True)
    assert changed.version == 2
    assert changed.id != first.id


async def test_a_new_schema_gets_the_next_version_and_a_new_id(registry: SchemaRegistry) -> None:
    first = await registry.register(SUBJECT, V1)
    second = await registry.register(SUBJECT, V2)
    assert second.version == 2
    assert second.id != first.id


async def test_the_same_schema_in_two_subjects_shares_its_id(registry: SchemaRegistry) -> None:
    orders = await registry.register(SUBJECT, V1)
    copies = await registry.register("order-copies-value", V1)
    assert copies.version == 1
    assert copies.id == orders.id


async def test_an_invalid_schema_is_refused(registry: SchemaRegistry) -> None:
    for text in (
        '{"type": "record", "name": "R"',
        '{"type": "nope"}',
        record(field("a", default="x")),
    ):
        with pytest.raises(InvalidSchema):
            await registry.register(SUBJECT, text)
    assert await registry.list_subjects() == []


# -- reading ------------------------------------------------------------------------------


async def test_get_by_id_returns_the_schema(registry: SchemaRegistry) -> None:
    registered = await registry.register(SUBJECT, V1)
    found = await registry.get_by_id(registered.id)
    assert json.loads(found.schema) == json.loads(V1)
    assert found.references == ()


async def test_get_by_unknown_id_is_schema_not_found(registry: SchemaRegistry) -> None:
    await registry.register(SUBJECT, V1)
    with pytest.raises(SchemaNotFound):
        await registry.get_by_id(987654)


async def test_lookup_finds_the_version_holding_a_schema(registry: SchemaRegistry) -> None:
    await registry.register(SUBJECT, V1)
    second = await registry.register(SUBJECT, V2)
    found = await registry.lookup(SUBJECT, json.dumps(json.loads(V2), indent=3))
    assert (found.version, found.id) == (2, second.id)


async def test_lookup_errors(registry: SchemaRegistry) -> None:
    await registry.register(SUBJECT, V1)
    with pytest.raises(SubjectNotFound):
        await registry.lookup("nobody-value", V1)
    with pytest.raises(SchemaNotFound) as caught:
        await registry.lookup(SUBJECT, V2)
    assert not isinstance(caught.value, SubjectNotFound)


async def test_get_version_latest_and_by_number(registry: SchemaRegistry) -> None:
    first = await registry.register(SUBJECT, V1)
    second = await registry.register(SUBJECT, V2)
    latest = await registry.get_version(SUBJECT)
    assert (latest.version, latest.id) == (2, second.id)
    assert (await registry.get_version(SUBJECT, "latest")).version == 2
    one = await registry.get_version(SUBJECT, 1)
    assert (one.version, one.id, json.loads(one.schema)) == (1, first.id, json.loads(V1))


async def test_unknown_subject_and_version_errors(registry: SchemaRegistry) -> None:
    await registry.register(SUBJECT, V1)
    with pytest.raises(SubjectNotFound):
        await registry.get_version("nobody-value")
    with pytest.raises(SubjectNotFound):
        await registry.list_versions("nobody-value")
    with pytest.raises(VersionNotFound):
        await registry.get_version(SUBJECT, 2)


async def test_list_subjects_and_versions(registry: SchemaRegistry) -> None:
    assert await registry.list_subjects() == []
    await registry.register("b-value", V1)
    await registry.register("a-value", V1)
    await registry.register("a-value", V2)
    assert await registry.list_subjects() == ["a-value", "b-value"]
    assert await registry.list_versions("a-value") == [1, 2]
    assert await registry.list_versions("b-value") == [1]


# -- compatibility ------------------------------------------------------------------------


async def test_default_level_is_backward(registry: SchemaRegistry) -> None:
    assert await registry.get_compatibility() is L.BACKWARD
    assert await registry.get_compatibility(SUBJECT) is L.BACKWARD


async def test_incompatible_schema_is_refused_with_field_rule_and_version(
    registry: SchemaRegistry,
) -> None:
    await registry.register(SUBJECT, V1)
    with pytest.raises(IncompatibleSchema) as caught:
        await registry.register(SUBJECT, BREAKS_V1)
    assert caught.value.messages == [
        "reader field 'amount' has no default and is missing from version 1 "
        "(READER_FIELD_MISSING_DEFAULT_VALUE at /fields/1)"
    ]
    assert await registry.list_versions(SUBJECT) == [1]


# Each case: the level, versions registered first, a schema the level accepts after them, one
# it refuses, and a fragment of the refusal's message (which names the version it breaks).
LEVEL_CASES = {
    L.NONE: ([V1], record(field("id")), None, ""),
    L.BACKWARD: (
        [V1],
        record(field("id", "string"), field("amount", "double", default=0.0)),
        BREAKS_V1,
        "reader field 'amount' has no default and is missing from version 1",
    ),
    L.BACKWARD_TRANSITIVE: (
        [record(field("id")), record(field("b", default=0))],
        record(field("b", default=0), field("c", default=0)),
        record(field("id", "string", default=""), field("b", default=0)),
        "the new schema reads string where version 1 writes int",
    ),
    L.FORWARD: (
        [record(field("id"), field("b"))],
        record(field("id"), field("b"), field("c")),
        record(field("id")),
        "reader field 'b' of version 1 has no default and is missing from the new schema",
    ),
    L.FORWARD_TRANSITIVE: (
        [record(field("id")), record(field("id", default=0))],
        record(field("id"), field("z")),
        record(field("z", default=0)),
        "reader field 'id' of version 1 has no default and is missing from the new schema",
    ),
    L.FULL: (
        [record(field("id"))],
        record(field("id"), field("z", default=0)),
        record(field("id"), field("z")),
        "reader field 'z' has no default and is missing from version 1",
    ),
    L.FULL_TRANSITIVE: (
        [record(field("id")), record(field("id", default=0))],
        record(field("id"), field("z", default=0)),
        record(field("z", default=0)),
        "reader field 'id' of version 1 has no default and is missing from the new schema",
    ),
}


@pytest.mark.parametrize("level", list(LEVEL_CASES), ids=str)
async def test_each_level_accepts_and_refuses(
    registry: SchemaRegistry, level: CompatibilityLevel
) -> None:
    earlier, accepted, refused, message = LEVEL_CASES[level]
    await registry.set_compatibility(level, SUBJECT)
    for text in earlier:
        await registry.register(SUBJECT, text)
    if refused is not None:
        check = await registry.check_compatibility(SUBJECT, refused)
        assert not check.is_compatible
        assert any(message in m for m in check.messages), check.messages
        with pytest.raises(IncompatibleSchema) as caught:
            await registry.register(SUBJECT, refused)
        assert any(message in m for m in caught.value.messages), caught.value.messages
    assert (await registry.check_compatibility(SUBJECT, accepted)).is_compatible
    registered = await registry.register(SUBJECT, accepted)
    assert registered.version == len(earlier) + 1


async def test_check_compatibility_against_one_version(registry: SchemaRegistry) -> None:
    await registry.register(SUBJECT, V1)
    await registry.set_compatibility(L.NONE, SUBJECT)
    await registry.register(SUBJECT, record(field("other")))
    await registry.set_compatibility(L.BACKWARD, SUBJECT)
    against_1 = await registry.check_compatibility(SUBJECT, V2, version=1)
    assert against_1.is_compatible
    latest = await registry.check_compatibility(SUBJECT, V2, version="latest")
    assert not latest.is_compatible
    assert "version 2" in latest.messages[0]
    with pytest.raises(VersionNotFound):
        await registry.check_compatibility(SUBJECT, V2, version=9)


async def test_a_subject_without_versions_is_compatible_with_anything(
    registry: SchemaRegistry,
) -> None:
    result = await registry.check_compatibility("nobody-value", V1)
    assert result.is_compatible


async def test_check_compatibility_refuses_an_invalid_schema(registry: SchemaRegistry) -> None:
    await registry.register(SUBJECT, V1)
    with pytest.raises(InvalidSchema):
        await registry.check_compatibility(SUBJECT, '{"type": "nope"}')


async def test_global_and_subject_levels(registry: SchemaRegistry) -> None:
    assert await registry.set_compatibility(L.FULL) is L.FULL
    assert await registry.get_compatibility() is L.FULL
    assert await registry.get_compatibility(SUBJECT) is L.FULL
    assert await registry.set_compatibility(L.NONE, SUBJECT) is L.NONE
    assert await registry.get_compatibility(SUBJECT) is L.NONE
    assert await registry.get_compatibility("other-value") is L.FULL
    assert await registry.get_compatibility() is L.FULL
    # The subject's own level governs it: NONE lets a breaking change through there only.
    await registry.register(SUBJECT, V1)
    await registry.register(SUBJECT, BREAKS_V1)
    await registry.register("other-value", V1)
    with pytest.raises(IncompatibleSchema):
        await registry.register("other-value", BREAKS_V1)


# -- deleting -----------------------------------------------------------------------------


async def test_soft_delete_hides_a_subject(registry: SchemaRegistry) -> None:
    first = await registry.register(SUBJECT, V1)
    await registry.register(SUBJECT, V2)
    await registry.register("other-value", V1)
    assert await registry.delete_subject(SUBJECT) == [1, 2]
    assert await registry.list_subjects() == ["other-value"]
    assert await registry.list_subjects(deleted=True) == ["orders-value", "other-value"]
    with pytest.raises(SubjectNotFound):
        await registry.get_version(SUBJECT)
    with pytest.raises(SubjectNotFound):
        await registry.lookup(SUBJECT, V1)
    assert (await registry.get_version(SUBJECT, 1, deleted=True)).id == first.id
    assert await registry.list_versions(SUBJECT, deleted=True) == [1, 2]
    assert (await registry.lookup(SUBJECT, V1, deleted=True)).version == 1
    # Records already written with the id stay readable.
    assert json.loads((await registry.get_by_id(first.id)).schema) == json.loads(V1)


async def test_soft_deleting_a_deleted_subject_again_is_an_error(registry: SchemaRegistry) -> None:
    await registry.register(SUBJECT, V1)
    await registry.delete_subject(SUBJECT)
    with pytest.raises(RegistryError) as caught:
        await registry.delete_subject(SUBJECT)
    assert caught.value.error_code == 40404


async def test_permanent_delete_removes_a_subject(registry: SchemaRegistry) -> None:
    await registry.register(SUBJECT, V1)
    await registry.register(SUBJECT, V2)
    await registry.delete_subject(SUBJECT)
    assert await registry.delete_subject(SUBJECT, permanent=True) == [1, 2]
    assert await registry.list_subjects(deleted=True) == []
    with pytest.raises(SubjectNotFound):
        await registry.list_versions(SUBJECT, deleted=True)


async def test_permanent_delete_before_soft_delete_is_an_error(registry: SchemaRegistry) -> None:
    await registry.register(SUBJECT, V1)
    with pytest.raises(RegistryError) as caught:
        await registry.delete_subject(SUBJECT, permanent=True)
    assert caught.value.error_code == 40405
    with pytest.raises(RegistryError) as caught:
        await registry.delete_version(SUBJECT, 1, permanent=True)
    assert caught.value.error_code == 40407
    assert await registry.list_versions(SUBJECT) == [1]


async def test_delete_unknown_subject_or_version(registry: SchemaRegistry) -> None:
    with pytest.raises(SubjectNotFound):
        await registry.delete_subject("nobody-value")
    await registry.register(SUBJECT, V1)
    with pytest.raises(VersionNotFound):
        await registry.delete_version(SUBJECT, 5)


async def test_delete_version_soft_then_permanent(registry: SchemaRegistry) -> None:
    await registry.register(SUBJECT, V1)
    second = await registry.register(SUBJECT, V2)
    assert await registry.delete_version(SUBJECT, "latest") == 2
    assert await registry.list_versions(SUBJECT) == [1]
    assert (await registry.get_version(SUBJECT)).version == 1
    with pytest.raises(VersionNotFound):
        await registry.get_version(SUBJECT, 2)
    assert (await registry.get_version(SUBJECT, 2, deleted=True)).id == second.id
    with pytest.raises(RegistryError) as caught:
        await registry.delete_version(SUBJECT, 2)
    assert caught.value.error_code == 40406
    assert await registry.delete_version(SUBJECT, 2, permanent=True) == 2
    assert await registry.list_versions(SUBJECT, deleted=True) == [1]


async def test_registering_after_soft_delete_continues_the_versions(
    registry: SchemaRegistry,
) -> None:
    first = await registry.register(SUBJECT, V1)
    await registry.register(SUBJECT, V2)
    await registry.delete_subject(SUBJECT)
    # A deleted version no longer answers for its schema: it gets a new version, same id.
    again = await registry.register(SUBJECT, V1)
    assert (again.version, again.id) == (3, first.id)
    assert await registry.list_versions(SUBJECT) == [3]
    assert (await registry.register(SUBJECT, V3)).version == 4


async def test_soft_deleted_versions_do_not_constrain_compatibility(
    registry: SchemaRegistry,
) -> None:
    await registry.register(SUBJECT, V1)
    await registry.delete_version(SUBJECT, 1)
    registered = await registry.register(SUBJECT, BREAKS_V1)
    assert registered.version == 2


async def test_registering_after_permanent_delete_starts_over(registry: SchemaRegistry) -> None:
    first = await registry.register(SUBJECT, V1)
    await registry.delete_subject(SUBJECT)
    await registry.delete_subject(SUBJECT, permanent=True)
    again = await registry.register(SUBJECT, V1)
    assert again.version == 1
    assert json.loads((await registry.get_by_id(again.id)).schema) == json.loads(V1)
    assert again.id == first.id


# -- references ---------------------------------------------------------------------------


async def test_schema_references(registry: SchemaRegistry) -> None:
    address = await registry.register("address-value", ADDRESS)
    ref = SchemaReference(name="shop.Address", subject="address-value", version=address.version)
    customer = await registry.register("customer-value", CUSTOMER, references=(ref,))
    assert customer.references == (ref,)
    by_id = await registry.get_by_id(customer.id)
    assert by_id.references == (ref,)
    assert json.loads(by_id.schema) == json.loads(CUSTOMER)
    found = await registry.lookup("customer-value", CUSTOMER, references=(ref,))
    assert found.id == customer.id
    latest = await registry.get_version("customer-value")
    assert latest.references == (ref,)


async def test_a_schema_with_an_unresolvable_reference_is_invalid(
    registry: SchemaRegistry,
) -> None:
    with pytest.raises(InvalidSchema):
        await registry.register("customer-value", CUSTOMER)
    ref = SchemaReference(name="shop.Address", subject="address-value", version=1)
    with pytest.raises(InvalidSchema):
        await registry.register("customer-value", CUSTOMER, references=(ref,))


async def test_evolving_a_referenced_type_is_checked(registry: SchemaRegistry) -> None:
    await registry.register("address-value", ADDRESS)
    zipped = json.loads(ADDRESS)
    zipped["fields"].append({"name": "zip", "type": "string"})
    await registry.set_compatibility(L.NONE, "address-value")
    await registry.register("address-value", json.dumps(zipped))
    v1 = SchemaReference(name="shop.Address", subject="address-value", version=1)
    v2 = SchemaReference(name="shop.Address", subject="address-value", version=2)
    await registry.register("customer-value", CUSTOMER, references=(v1,))
    with pytest.raises(IncompatibleSchema) as caught:
        await registry.register("customer-value", CUSTOMER, references=(v2,))
    assert "reader field 'zip' has no default" in caught.value.messages[0]


async def test_a_referenced_version_cannot_be_deleted(registry: SchemaRegistry) -> None:
    address = await registry.register("address-value", ADDRESS)
    ref = SchemaReference(name="shop.Address", subject="address-value", version=address.version)
    await registry.register("customer-value", CUSTOMER, references=(ref,))
    with pytest.raises(ReferenceExists) as caught:
        await registry.delete_version("address-value", 1)
    assert caught.value.error_code == 42206
    assert "customer-value" in str(caught.value)
    with pytest.raises(ReferenceExists):
        await registry.delete_subject("address-value")
    assert await registry.list_versions("address-value") == [1]  # nothing was deleted
    # Once its referrer is soft-deleted the version may be soft-deleted, but it stays until
    # the referrer is gone for good: soft-deleted schemas can still be read by id.
    await registry.delete_subject("customer-value")
    await registry.delete_version("address-value", 1)
    with pytest.raises(ReferenceExists):
        await registry.delete_version("address-value", 1, permanent=True)
    await registry.delete_subject("customer-value", permanent=True)
    assert await registry.delete_version("address-value", 1, permanent=True) == 1


# -- subject-level settings ---------------------------------------------------------------


async def test_a_subject_without_a_level_of_its_own(registry: SchemaRegistry) -> None:
    await registry.set_compatibility(L.FULL)
    with pytest.raises(SettingNotFound) as caught:
        await registry.get_compatibility(SUBJECT, default_to_global=False)
    assert caught.value.error_code == 40408
    assert await registry.get_compatibility(SUBJECT) is L.FULL  # default_to_global
    await registry.set_compatibility(L.NONE, SUBJECT)
    assert await registry.get_compatibility(SUBJECT, default_to_global=False) is L.NONE
    assert await registry.delete_compatibility(SUBJECT) is L.NONE
    with pytest.raises(SettingNotFound):
        await registry.get_compatibility(SUBJECT, default_to_global=False)
    with pytest.raises(SettingNotFound) as again:
        await registry.delete_compatibility(SUBJECT)
    assert again.value.error_code == 40408
    assert await registry.get_compatibility(SUBJECT) is L.FULL


async def test_deleting_the_global_level_restores_backward(registry: SchemaRegistry) -> None:
    await registry.set_compatibility(L.NONE)
    assert await registry.delete_compatibility() is L.NONE
    assert await registry.get_compatibility() is L.BACKWARD
    # BACKWARD is enforced again: NONE no longer lets a breaking change through.
    await registry.register(SUBJECT, V1)
    with pytest.raises(IncompatibleSchema):
        await registry.register(SUBJECT, BREAKS_V1)


# -- modes --------------------------------------------------------------------------------


async def test_modes_resolve_subject_then_global_then_readwrite(registry: SchemaRegistry) -> None:
    assert await registry.get_mode() is Mode.READWRITE
    assert await registry.get_mode(SUBJECT) is Mode.READWRITE
    with pytest.raises(SettingNotFound) as caught:
        await registry.get_mode(SUBJECT, default_to_global=False)
    assert caught.value.error_code == 40409
    assert await registry.set_mode(Mode.READONLY) is Mode.READONLY
    assert await registry.set_mode(Mode.READWRITE, SUBJECT) is Mode.READWRITE
    assert await registry.get_mode(SUBJECT, default_to_global=False) is Mode.READWRITE
    assert await registry.get_mode("other-value") is Mode.READONLY
    assert await registry.delete_mode(SUBJECT) is Mode.READWRITE
    assert await registry.get_mode(SUBJECT) is Mode.READONLY
    with pytest.raises(SettingNotFound) as again:
        await registry.delete_mode(SUBJECT)
    assert again.value.error_code == 40409
    assert await registry.delete_mode() is Mode.READONLY
    assert await registry.get_mode() is Mode.READWRITE


async def test_an_invalid_mode_is_refused(registry: SchemaRegistry) -> None:
    with pytest.raises(RegistryError) as caught:
        await registry.set_mode("SIDEWAYS", SUBJECT)  # type: ignore[arg-type]
    assert caught.value.error_code == 42204
    assert await registry.get_mode(SUBJECT) is Mode.READWRITE


async def test_readonly_refuses_every_write(registry: SchemaRegistry) -> None:
    first = await registry.register(SUBJECT, V1)
    await registry.set_mode(Mode.READONLY, SUBJECT)
    refused: list[Any] = [
        registry.register(SUBJECT, V2),
        registry.delete_version(SUBJECT, 1),
        registry.delete_subject(SUBJECT),
        registry.set_compatibility(L.NONE, SUBJECT),
    ]
    for write in refused:
        with pytest.raises(OperationNotPermitted) as caught:
            await write
        assert caught.value.error_code == 42205
        assert "read-only" in str(caught.value)
    # What the subject holds is still answered, so serializers that register on start work.
    again = await registry.register(SUBJECT, V1)
    assert (again.version, again.id) == (1, first.id)
    assert await registry.list_versions(SUBJECT) == [1]
    assert (await registry.register("other-value", V2)).version == 1
    await registry.set_mode(Mode.READWRITE, SUBJECT)
    assert (await registry.register(SUBJECT, V2)).version == 2


async def test_a_global_readonly_mode_yields_to_a_subject_mode(registry: SchemaRegistry) -> None:
    await registry.set_mode(Mode.READONLY)
    with pytest.raises(OperationNotPermitted):
        await registry.register(SUBJECT, V1)
    with pytest.raises(OperationNotPermitted):
        await registry.set_compatibility(L.NONE)
    await registry.set_mode(Mode.READWRITE, SUBJECT)
    assert (await registry.register(SUBJECT, V1)).version == 1
    assert await registry.list_subjects() == [SUBJECT]


async def test_import_mode_keeps_the_given_id_and_version(registry: SchemaRegistry) -> None:
    await registry.set_mode(Mode.IMPORT)
    imported = await registry.register(SUBJECT, V1, schema_id=5000, version=3)
    assert (imported.subject, imported.version, imported.id) == (SUBJECT, 3, 5000)
    assert json.loads((await registry.get_by_id(5000)).schema) == json.loads(V1)
    assert await registry.list_versions(SUBJECT) == [3]
    # Importing is idempotent; compatibility is not checked (the source registry did).
    again = await registry.register(SUBJECT, V1, schema_id=5000, version=3)
    assert (again.version, again.id) == (3, 5000)
    breaking = await registry.register(SUBJECT, BREAKS_V1, schema_id=5001, version=7)
    assert (breaking.version, breaking.id) == (7, 5001)
    # The same id imported into another subject must hold the same schema.
    assert (await registry.register("copies-value", V1, schema_id=5000, version=1)).id == 5000
    refusals: list[Any] = [
        registry.register("other-value", V2, schema_id=5000, version=1),  # id holds V1
        registry.register(SUBJECT, V2, schema_id=5002, version=5),  # below version 7
        registry.register(SUBJECT, V2),  # IMPORT takes ids and versions only
    ]
    for refused in refusals:
        with pytest.raises(OperationNotPermitted) as caught:
            await refused
        assert caught.value.error_code == 42205
    assert await registry.list_versions(SUBJECT) == [3, 7]
    await registry.delete_mode()
    with pytest.raises(OperationNotPermitted) as not_import:
        await registry.register(SUBJECT, V3, schema_id=5003, version=8)
    assert "import mode" in str(not_import.value)
    # Back in READWRITE, a new schema gets a fresh id and the next version.
    await registry.set_compatibility(L.NONE, SUBJECT)
    fresh = await registry.register(SUBJECT, V3)
    assert fresh.version == 8
    assert fresh.id not in (5000, 5001)


async def test_entering_import_mode_needs_a_subject_without_versions(
    registry: SchemaRegistry,
) -> None:
    await registry.register(SUBJECT, V1)
    await registry.delete_subject(SUBJECT)  # soft-deleted versions still count
    for subject in (SUBJECT, None):
        with pytest.raises(OperationNotPermitted) as caught:
            await registry.set_mode(Mode.IMPORT, subject)
        assert caught.value.error_code == 42205
    assert await registry.set_mode(Mode.IMPORT, "fresh-value") is Mode.IMPORT
    assert await registry.set_mode(Mode.IMPORT, SUBJECT, force=True) is Mode.IMPORT
    assert await registry.get_mode(SUBJECT) is Mode.IMPORT


async def test_an_imported_version_or_id_must_match_what_the_subject_holds(
    registry: SchemaRegistry,
) -> None:
    await registry.set_mode(Mode.IMPORT, SUBJECT)
    await registry.register(SUBJECT, V1, schema_id=70, version=1)
    with pytest.raises(RegistryError) as caught:
        await registry.register(SUBJECT, V1, schema_id=71, version=1)
    assert caught.value.error_code == 42207
    with pytest.raises(RegistryError) as out_of_range:
        await registry.register(SUBJECT, V2, schema_id=0, version=2)
    assert out_of_range.value.error_code == 42207


# -- compatibility of a subject without versions ------------------------------------------


async def test_latest_of_an_unknown_subject_is_compatible(registry: SchemaRegistry) -> None:
    result = await registry.check_compatibility("nobody-value", V1, version="latest")
    assert result.is_compatible
    with pytest.raises(SubjectNotFound):
        await registry.check_compatibility("nobody-value", V1, version=1)
