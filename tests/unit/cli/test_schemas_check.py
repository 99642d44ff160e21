"""``schemas check``: validation, classes against contracts, git and registry gates."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventplatform.registry.memory import MemoryRegistry
from eventplatform.schema import generate_module, load_catalogue
from tests.unit.cli.conftest import Invoke
from tests.unit.cli.test_schemas_register import ORDER_PLACED, add_field, edit


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repository(catalogue: Path) -> Path:
    """The catalogue committed as HEAD of a fresh git repository."""
    git(catalogue.parent, "init", "-q")
    git(catalogue.parent, "add", ".")
    git(catalogue.parent, "commit", "-q", "-m", "catalogue")
    return catalogue


def test_a_valid_catalogue_passes(cli: Invoke, catalogue: Path) -> None:
    result = cli("schemas", "check", str(catalogue))

    assert result.exit_code == 0, result.output
    assert "5 schemas" in result.stdout


def test_an_invalid_file_fails_naming_file_and_json_path(cli: Invoke, catalogue: Path) -> None:
    (catalogue / "com/example/orders/Broken.avsc").write_text('{"type": "record", "name": ')

    result = cli("schemas", "check", str(catalogue))

    assert result.exit_code == 1
    assert "Broken.avsc:1:" in result.stderr
    assert "invalid JSON" in result.stderr


def test_against_git_passes_a_compatible_change(cli: Invoke, repository: Path) -> None:
    edit(
        repository,
        ORDER_PLACED,
        add_field({"name": "coupon", "type": ["null", "string"], "default": None}),
    )

    result = cli("schemas", "check", str(repository), "--against-git", "HEAD")

    assert result.exit_code == 0, result.output
    assert "fields added: coupon" in result.stdout


def test_against_git_fails_a_breaking_change_with_field_rule_and_version(
    cli: Invoke, repository: Path
) -> None:
    edit(repository, ORDER_PLACED, add_field({"name": "channel", "type": "string"}))

    result = cli("schemas", "check", str(repository), "--against-git", "HEAD")

    assert result.exit_code == 1
    assert (
        "reader field 'channel' has no default and is missing from the version at HEAD "
        "(READER_FIELD_MISSING_DEFAULT_VALUE at /fields/7)"
    ) in result.stderr


def test_against_git_checks_the_forward_direction_at_level_forward(
    cli: Invoke, repository: Path
) -> None:
    # Removing a field without a default: new readers are fine, old readers are not.
    edit(repository, ORDER_PLACED, lambda schema: schema["fields"].pop(1))

    backward = cli("schemas", "check", str(repository), "--against-git", "HEAD")
    forward = cli(
        "schemas", "check", str(repository), "--against-git", "HEAD", "--level", "FORWARD"
    )

    assert backward.exit_code == 0, backward.output
    assert forward.exit_code == 1
    assert "reader field 'customer_id' of the version at HEAD has no default" in forward.stderr


def test_against_git_at_level_none_accepts_anything(cli: Invoke, repository: Path) -> None:
    edit(repository, ORDER_PLACED, add_field({"name": "channel", "type": "string"}))

    result = cli("schemas", "check", str(repository), "--against-git", "HEAD", "--level", "NONE")

    assert result.exit_code == 0, result.output


def test_against_git_reads_the_old_catalogue_from_the_revision(
    cli: Invoke, repository: Path
) -> None:
    edit(repository, ORDER_PLACED, add_field({"name": "channel", "type": "string"}))
    git(repository.parent, "commit", "-q", "-am", "breaking")

    at_head = cli("schemas", "check", str(repository), "--against-git", "HEAD")
    at_parent = cli("schemas", "check", str(repository), "--against-git", "HEAD~1")

    assert at_head.exit_code == 0, at_head.output
    assert at_parent.exit_code == 1
    assert "missing from the version at HEAD~1" in at_parent.stderr


def test_against_git_names_new_and_removed_types(cli: Invoke, repository: Path) -> None:
    moved = repository / "com/example/customers/CustomerRegistered.avsc"
    schema = json.loads(moved.read_text())
    moved.unlink()
    schema["name"] = "CustomerSignedUp"
    (moved.parent / "CustomerSignedUp.avsc").write_text(json.dumps(schema))

    result = cli("schemas", "check", str(repository), "--against-git", "HEAD")

    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "CustomerSignedUp" in line)
    assert "new" in row
    assert "CustomerRegistered existed at HEAD and was removed" in result.stderr


def test_against_git_with_an_unknown_revision_fails_clearly(cli: Invoke, repository: Path) -> None:
    result = cli("schemas", "check", str(repository), "--against-git", "no-such-ref")

    assert result.exit_code == 1
    assert "'no-such-ref' is not a commit" in result.stderr


def test_against_registry_fails_a_breaking_change(
    cli: Invoke, catalogue: Path, memory_registry: MemoryRegistry
) -> None:
    cli("schemas", "register", str(catalogue))
    edit(catalogue, ORDER_PLACED, add_field({"name": "channel", "type": "string"}))

    result = cli("schemas", "check", str(catalogue), "--against-registry")

    assert result.exit_code == 1
    assert "missing from version 1" in result.stderr
    assert len(memory_registry.log) == 6  # the init record and five registrations, no more


@pytest.fixture
def classes_module(catalogue: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module generated from the catalogue, importable as ``sample_events``."""
    (catalogue.parent / "sample_events.py").write_text(generate_module(load_catalogue(catalogue)))
    monkeypatch.syspath_prepend(str(catalogue.parent))
    yield "sample_events"
    sys.modules.pop("sample_events", None)


def test_classes_that_agree_with_their_contracts_pass(
    cli: Invoke, catalogue: Path, classes_module: str
) -> None:
    result = cli("schemas", "check", str(catalogue), "--classes", classes_module)

    assert result.exit_code == 0, result.output
    assert "OrderPlaced agrees with" in result.stdout


def test_a_class_that_disagrees_fails_naming_the_field(
    cli: Invoke, catalogue: Path, classes_module: str
) -> None:
    edit(
        catalogue,
        ORDER_PLACED,
        add_field({"name": "coupon", "type": ["null", "string"], "default": None}),
    )

    result = cli("schemas", "check", str(catalogue), "--classes", classes_module)

    assert result.exit_code == 1
    assert "OrderPlaced disagrees with" in result.stderr
    assert "OrderPlaced.coupon" in result.stderr


def test_a_class_without_a_contract_fails(
    cli: Invoke, catalogue: Path, classes_module: str
) -> None:
    (catalogue / "com/example/orders/OrderShipped.avsc").unlink()

    result = cli("schemas", "check", str(catalogue), "--classes", classes_module)

    assert result.exit_code == 1
    assert "no .avsc" in result.stderr
    assert "com.example.orders.OrderShipped" in result.stderr


def test_a_missing_classes_module_is_a_usage_error(cli: Invoke, catalogue: Path) -> None:
    result = cli("schemas", "check", str(catalogue), "--classes", "no_such_module_here")

    assert result.exit_code == 2
    assert "no_such_module_here" in result.stderr


def test_an_invalid_file_at_the_revision_is_named_as_git_names_it(
    cli: Invoke, catalogue: Path
) -> None:
    broken = catalogue / "com/example/orders/Broken.avsc"
    broken.write_text('{"type": "record", "name": "Broken", "fields": 3}')
    git(catalogue.parent, "init", "-q")
    git(catalogue.parent, "add", ".")
    git(catalogue.parent, "commit", "-q", "-m", "broken")
    broken.unlink()

    result = cli("schemas", "check", str(catalogue), "--against-git", "HEAD")

    assert result.exit_code == 1
    assert "HEAD:schemas/com/example/orders/Broken.avsc" in result.stderr


def test_against_a_revision_without_the_catalogue_everything_is_new(
    cli: Invoke, catalogue: Path
) -> None:
    (catalogue.parent / "README").write_text("before the catalogue\n")
    git(catalogue.parent, "init", "-q")
    git(catalogue.parent, "add", "README")
    git(catalogue.parent, "commit", "-q", "-m", "empty")

    result = cli("schemas", "check", str(catalogue), "--against-git", "HEAD")

    assert result.exit_code == 0, result.output
    assert result.stdout.count(" new ") == 5
