"""Building a Kafka-log registry: settings and state checks that need no broker."""

from __future__ import annotations

import pytest

from eventplatform.errors import ConfigurationError, ResourceStateError
from eventplatform.registry import KafkaLogRegistry, SchemaRegistry
from eventplatform.settings import KafkaSettings, Settings


@pytest.fixture(autouse=True)
def no_kafka_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)


def test_bootstrap_servers_are_required() -> None:
    with pytest.raises(ConfigurationError, match="bootstrap_servers"):
        KafkaLogRegistry(settings=Settings())


def test_bootstrap_servers_come_from_settings_unless_given() -> None:
    settings = Settings(kafka=KafkaSettings(bootstrap_servers="kafka:9092"))
    assert KafkaLogRegistry(settings=settings).bootstrap_servers == "kafka:9092"
    given = KafkaLogRegistry(bootstrap_servers="other:9092", settings=settings)
    assert given.bootstrap_servers == "other:9092"
    assert given.topic == "_eventplatform_schemas"
    assert (
        repr(given)
        == "KafkaLogRegistry(bootstrap_servers='other:9092', topic='_eventplatform_schemas')"
    )


def test_replication_factor_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="replication_factor"):
        KafkaLogRegistry(bootstrap_servers="kafka:9092", replication_factor=0)


async def test_use_before_start_is_a_resource_state_error() -> None:
    registry = KafkaLogRegistry(bootstrap_servers="kafka:9092")
    assert isinstance(registry, SchemaRegistry)
    with pytest.raises(ResourceStateError, match=r"KafkaLogRegistry used before start\(\)"):
        await registry.get_version("orders-value")
    await registry.close()
    with pytest.raises(ResourceStateError, match="closed"):
        await registry.start()
