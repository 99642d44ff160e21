"""``schemas register`` against an in-memory registry: table, idempotence, all-or-nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from eventplatform.registry.memory import MemoryRegistry
from tests.unit.cli.conftest import Invoke

ORDER_PLACED = Path("com/example/orders/OrderPlaced.avsc")
SAMPLE_TYPES = [
    "com.example.customers.CustomerRegistered",
    "com.example.orders.Currency",
    "com.example.orders.OrderPaid",
    "com.example.orders.OrderPlaced",
    "com.example.orders.OrderShipped",
]


def edit(catalogue: Path, relative: Path, change: Any) -> None:
    path = catalogue / relative
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema, indent=2))


def add_field(field: dict[str, Any]) -> Any:
    return lambda schema: schema["fields"].append(field)


def subjects(registry: MemoryRegistry) -> dict[str, list[int]]:
    async def read() -> dict[str, list[int]]:
        await registry.start()
        return {s: await registry.list_versions(s) for s in await registry.list_subjects()}

    return asyncio.run(read())


def test_register_registers_every_type_in_dependency_order(
    cli: Invoke, catalogue: Path, memory_registry: MemoryRegistry
) -> None:
    result = cli("schemas", "register", str(catalogue))

    assert result.exit_code == 0, result.output
    assert subjects(memory_registry) == {key: [1] for key in SAMPLE_TYPES}
    rows = [line for line in result.stdout.splitlines() if "com.example" in line]
    assert [row.split()[1] for row in rows] == SAMPLE_TYPES
    assert all(row.split()[-2] == "new" for row in rows)


def test_registering_again_changes_nothing(
    cli: Invoke, catalogue: Path, memory_registry: MemoryRegistry
) -> None:
    cli("schemas", "register", str(catalogue))
    log_length = len(memory_registry.log)

    result = cli("schemas", "register", str(catalogue))

    assert result.exit_code == 0, result.output
    assert len(memory_registry.log) == log_length
    assert result.stdout.count("unchanged") == len(SAMPLE_TYPES)


def test_a_compatible_change_is_a_new_version_with_a_summary(
    cli: Invoke, catalogue: Path, memory_registry: MemoryRegistry
) -> None:
    cli("schemas", "register", str(catalogue))
    edit(
        catalogue,
        ORDER_PLACED,
        add_field({"name": "coupon", "type": ["null", "string"], "default": None}),
    )

    result = cli("schemas", "register", str(catalogue))

    assert result.exit_code == 0, result.output
    assert subjects(memory_registry)["com.example.orders.OrderPlaced"] == [1, 2]
    row = next(line for line in result.stdout.splitlines() if "OrderPlaced" in line)
    assert "new version: fields added: coupon (null | string, default null)" in row
    assert row.split()[3] == "2"


def test_an_incompatible_change_registers_nothing_and_names_the_field(
    cli: Invoke, catalogue: Path, memory_registry: MemoryRegistry
) -> None:
    cli("schemas", "register", str(catalogue))
    before = subjects(memory_registry)
    edit(catalogue, ORDER_PLACED, add_field({"name": "channel", "type": "string"}))
    # A new, valid type in the same run must not be registered either.
    (catalogue / "com/example/orders/OrderCancelled.avsc").write_text(
        json.dumps(
            {
                "type": "record",
                "name": "OrderCancelled",
                "namespace": "com.example.orders",
                "fields": [{"name": "order_id", "type": "string"}],
            }
        )
    )

    result = cli("schemas", "register", str(catalogue))

    assert result.exit_code == 1
    assert subjects(memory_registry) == before
    assert "reader field 'channel' has no default and is missing from version 1" in result.stderr
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in result.stderr
    assert "nothing was registered" in result.stderr


def test_an_invalid_file_registers_nothing_and_names_file_and_json_path(
    cli: Invoke, catalogue: Path, memory_registry: MemoryRegistry
) -> None:
    edit(
        catalogue,
        Path("com/example/orders/OrderShipped.avsc"),
        lambda schema: schema["fields"][1].update(type="text"),
    )

    result = cli("schemas", "register", str(catalogue))

    assert result.exit_code == 1
    assert subjects(memory_registry) == {}
    assert "OrderShipped.avsc" in result.stderr
    assert "$.fields[1].type" in result.stderr
    assert "Traceback" not in result.stderr


def test_dry_run_compares_without_registering(
    cli: Invoke, catalogue: Path, memory_registry: MemoryRegistry
) -> None:
    result = cli("schemas", "register", str(catalogue), "--dry-run")

    assert result.exit_code == 0, result.output
    assert subjects(memory_registry) == {}
    assert result.stdout.count(" new ") == len(SAMPLE_TYPES)
    assert "dry run: nothing was registered" in result.stdout


def test_topic_strategy_registers_one_record_under_the_topic_value_subject(
    cli: Invoke, catalogue: Path, memory_registry: MemoryRegistry
) -> None:
    result = cli(
        "schemas", "register", str(catalogue), "--topic", "orders",
        "--type", "com.example.orders.OrderPaid",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert subjects(memory_registry) == {"orders-value": [1]}


def test_topic_strategy_without_a_single_type_is_a_usage_error(
    cli: Invoke, catalogue: Path, memory_registry: MemoryRegistry
) -> None:
    result = cli("schemas", "register", str(catalogue), "--topic", "orders")

    assert result.exit_code == 2
    assert "--type" in result.stderr
    assert subjects(memory_registry) == {}


def test_topic_record_strategy_registers_records_only(
    cli: Invoke, catalogue: Path, memory_registry: MemoryRegistry
) -> None:
    result = cli(
        "schemas", "register", str(catalogue), "--strategy", "topic_record", "--topic", "shop"
    )

    assert result.exit_code == 0, result.output
    assert sorted(subjects(memory_registry)) == [
        f"shop-{name}" for name in SAMPLE_TYPES if not name.endswith("Currency")
    ]


def test_without_a_registry_configured_the_error_says_what_to_set(
    cli: Invoke, catalogue: Path
) -> None:
    result = cli("schemas", "register", str(catalogue))

    assert result.exit_code == 1
    assert "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS" in result.stderr
    assert "EVENTPLATFORM_REGISTRY__URL" in result.stderr
