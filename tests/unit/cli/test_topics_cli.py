"""``topics`` commands without a broker: arguments, configuration and connection errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from eventplatform.cli.topics import parse_configs
from tests.unit.cli.conftest import Invoke

UNREACHABLE = "127.0.0.1:1"  # nothing listens on port 1: connecting fails at once


@pytest.fixture
def unreachable_cluster(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS", UNREACHABLE)
    return UNREACHABLE


def test_configs_parse_from_key_value_pairs() -> None:
    assert parse_configs(["retention.ms=1000", " cleanup.policy = compact", "x="]) == {
        "retention.ms": "1000",
        "cleanup.policy": "compact",
        "x": "",
    }


@pytest.mark.parametrize("pair", ["retention.ms", "=1000"])
def test_a_config_without_key_and_equals_sign_is_refused(pair: str) -> None:
    with pytest.raises(typer.BadParameter, match="KEY=VALUE"):
        parse_configs([pair])


def test_create_with_a_malformed_config_is_a_usage_error(
    cli: Invoke, unreachable_cluster: str
) -> None:
    result = cli("topics", "create", "orders", "--config", "retention.ms")

    assert result.exit_code == 2
    assert "'retention.ms' is not KEY=VALUE" in result.stderr


def test_without_a_cluster_configured_the_error_says_what_to_set(
    cli: Invoke, workdir: Path
) -> None:
    result = cli("topics", "list")

    assert result.exit_code == 1
    assert "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [("list",), ("create", "orders"), ("describe", "orders"), ("delete", "orders", "--yes")],
)
def test_an_unreachable_cluster_is_a_kafka_error_naming_it(
    cli: Invoke, unreachable_cluster: str, args: tuple[str, ...]
) -> None:
    result = cli("topics", *args)

    assert result.exit_code == 1
    assert f"KafkaError: connecting to Kafka on {UNREACHABLE} failed" in result.stderr
    assert "Traceback" not in result.stderr


def test_delete_asks_first_and_a_no_stops_it(cli: Invoke, unreachable_cluster: str) -> None:
    result = cli("topics", "delete", "orders", input="n\n")

    assert result.exit_code == 1
    assert "Delete topic 'orders' and all its records?" in result.stderr
    assert "KafkaError" not in result.stderr  # it never connected
