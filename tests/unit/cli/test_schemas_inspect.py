"""``schemas list``, ``show`` and ``diff`` read the registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eventplatform.registry.memory import MemoryRegistry
from eventplatform.schema import load_catalogue
from tests.unit.cli.conftest import Invoke
from tests.unit.cli.test_schemas_register import ORDER_PLACED, add_field, edit

SUBJECT = "com.example.orders.OrderPlaced"


@pytest.fixture
def two_versions(cli: Invoke, catalogue: Path, memory_registry: MemoryRegistry) -> Path:
    """The catalogue registered, then OrderPlaced registered again with a ``coupon`` field."""
    assert cli("schemas", "register", str(catalogue)).exit_code == 0
    edit(
        catalogue,
        ORDER_PLACED,
        add_field({"name": "coupon", "type": ["null", "string"], "default": None}),
    )
    assert cli("schemas", "register", str(catalogue)).exit_code == 0
    return catalogue


def test_list_shows_latest_version_id_and_level(cli: Invoke, two_versions: Path) -> None:
    result = cli("schemas", "list")

    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if SUBJECT in line)
    assert row.split()[1::2] == [SUBJECT, "2", "6", "BACKWARD"]
    assert "5 subjects; global compatibility BACKWARD" in result.stdout


def test_show_prints_the_schema_as_json_alone_on_stdout(cli: Invoke, two_versions: Path) -> None:
    result = cli("schemas", "show", SUBJECT, "--version", "1")

    assert result.exit_code == 0, result.output
    version_1 = load_catalogue(two_versions)[SUBJECT].resolved
    version_1["fields"] = [f for f in version_1["fields"] if f["name"] != "coupon"]
    assert json.loads(result.stdout) == version_1
    assert f"{SUBJECT} version 1, id 4" in result.stderr


def test_show_of_an_unknown_subject_fails_with_the_registry_error(
    cli: Invoke, two_versions: Path
) -> None:
    result = cli("schemas", "show", "no.such.Subject")

    assert result.exit_code == 1
    assert "SubjectNotFound" in result.stderr


def test_show_refuses_a_version_that_is_not_one(cli: Invoke, two_versions: Path) -> None:
    result = cli("schemas", "show", SUBJECT, "--version", "first")

    assert result.exit_code == 2
    assert "not a version" in result.stderr


def test_diff_between_versions_shows_changes_and_verdict(cli: Invoke, two_versions: Path) -> None:
    result = cli("schemas", "diff", SUBJECT, "1", "2")

    assert result.exit_code == 0, result.output
    assert f"{SUBJECT}: version 1 → version 2" in result.stdout
    assert "+ coupon: field coupon added (null | string, default null)" in result.stdout
    assert "compatible with version 1 under BACKWARD" in result.stdout


def test_diff_of_a_file_against_the_registry_gives_the_verdict_of_registering_it(
    cli: Invoke, two_versions: Path
) -> None:
    edit(two_versions, ORDER_PLACED, lambda schema: schema["fields"][1].update(type="long"))

    result = cli("schemas", "diff", str(two_versions / ORDER_PLACED), "--against-registry")

    assert result.exit_code == 1
    assert f"{SUBJECT}: version 2 → the file" in result.stdout
    assert "~ customer_id: type string → long" in result.stdout
    assert "incompatible with subject" in result.stdout
    assert "TYPE_MISMATCH" in result.stdout


def test_diff_of_an_unregistered_file_says_it_is_new(
    cli: Invoke, catalogue: Path, memory_registry: MemoryRegistry
) -> None:
    result = cli("schemas", "diff", str(catalogue / ORDER_PLACED), "--against-registry")

    assert result.exit_code == 0, result.output
    assert "is not registered" in result.stdout


def test_diff_without_two_versions_is_a_usage_error(cli: Invoke, two_versions: Path) -> None:
    result = cli("schemas", "diff", SUBJECT, "1")

    assert result.exit_code == 2
    assert "two versions" in result.stderr
