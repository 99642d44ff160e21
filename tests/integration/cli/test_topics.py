"""``topics create|list|describe|delete`` against the real broker."""

from __future__ import annotations

from collections.abc import Callable

from tests.integration.cli.conftest import Invoke, Platform


def test_create_describe_list_and_delete(
    cli: Invoke, platform: Platform, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("orders")

    created = cli("topics", "create", topic, "-p", "3", "-c", "retention.ms=60000")
    again = cli("topics", "create", topic)
    tolerated = cli("topics", "create", topic, "--if-not-exists")
    described = cli("topics", "describe", topic)
    listed = cli("topics", "list")
    deleted = cli("topics", "delete", topic, "--yes")
    gone = cli("topics", "describe", topic)

    assert created.exit_code == 0, created.output
    assert "3 partitions, replication factor 1" in created.stdout
    assert again.exit_code == 1
    assert "TopicAlreadyExistsError" in again.stderr
    assert tolerated.exit_code == 0, tolerated.output
    assert described.exit_code == 0, described.output
    partitions = [
        line.split()[1] for line in described.stdout.splitlines() if line.startswith("│ ")
    ]
    assert partitions[:3] == ["0", "1", "2"]
    assert "retention.ms" in described.stdout
    assert "60000" in described.stdout
    row = next(line for line in listed.stdout.splitlines() if topic in line)
    assert row.split()[1::2] == [topic, "3", "1"]
    assert deleted.exit_code == 0, deleted.output
    assert gone.exit_code == 1
    assert f"topic {topic!r} does not exist" in gone.stderr


def test_an_invalid_config_is_refused_by_the_broker(
    cli: Invoke, platform: Platform, unique_topic: Callable[[str], str]
) -> None:
    result = cli("topics", "create", unique_topic("bad"), "-c", "no.such.config=1")

    assert result.exit_code == 1
    assert "InvalidConfigurationError" in result.stderr
