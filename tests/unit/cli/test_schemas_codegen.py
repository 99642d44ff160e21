"""``schemas codegen``: write the typed module, and ``--check`` it in CI."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from eventplatform.schema import AvroEvent
from tests.unit.cli.conftest import Invoke
from tests.unit.cli.test_schemas_register import ORDER_PLACED, add_field, edit


def test_codegen_writes_an_importable_module_naming_its_command(
    cli: Invoke, catalogue: Path
) -> None:
    result = cli("schemas", "codegen", "schemas", "--out", "gen/events.py")

    assert result.exit_code == 0, result.output
    source = Path("gen/events.py").read_text()
    assert "eventplatform schemas codegen schemas/ --out gen/events.py" in source.splitlines()[0]
    spec = importlib.util.spec_from_file_location("generated_events", "gen/events.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert issubclass(module.OrderPlaced, AvroEvent)
    assert module.OrderPlaced.__avro_name__ == "com.example.orders.OrderPlaced"


def test_check_passes_when_the_module_is_up_to_date(cli: Invoke, catalogue: Path) -> None:
    cli("schemas", "codegen", "schemas", "--out", "events.py")

    result = cli("schemas", "codegen", "schemas", "--out", "events.py", "--check")

    assert result.exit_code == 0, result.output
    assert "up to date" in result.stdout


def test_check_fails_with_a_diff_when_a_schema_changed(cli: Invoke, catalogue: Path) -> None:
    cli("schemas", "codegen", "schemas", "--out", "events.py")
    before = Path("events.py").read_text()
    edit(
        catalogue,
        ORDER_PLACED,
        add_field({"name": "coupon", "type": ["null", "string"], "default": None}),
    )

    result = cli("schemas", "codegen", "schemas", "--out", "events.py", "--check")

    assert result.exit_code == 1
    assert "+    coupon: str | None" in result.stderr
    assert "events.py is out of date; run: eventplatform schemas codegen" in result.stderr
    assert Path("events.py").read_text() == before


def test_check_fails_when_the_module_does_not_exist(cli: Invoke, catalogue: Path) -> None:
    result = cli("schemas", "codegen", "schemas", "--out", "missing.py", "--check")

    assert result.exit_code == 1
    assert "missing.py does not exist" in result.stderr
    assert not Path("missing.py").exists()
