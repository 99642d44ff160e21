"""What only the Kafka-log registry does: its topic, replay, optimistic concurrency, failures."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from eventplatform.errors import (
    ConfigurationError,
    OperationNotPermitted,
    RegistryError,
    RegistryUnavailable,
    ResourceStateError,
    SettingNotFound,
)
from eventplatform.registry.base import CompatibilityLevel, Mode
from eventplatform.registry.commands import FORMAT, Guard, Register, encode
from eventplatform.registry.kafkalog import KafkaLogRegistry

pytestmark = pytest.mark.integration

V1 = json.dumps({"type": "record", "name": "Order", "fields": [{"name": "id", "type": "string"}]})
V2 = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "note", "type": "string", "default": ""},
        ],
    }
)


@pytest.fixture
def topic(unique_topic: Callable[[str], str]) -> str:
    return unique_topic("schemas")


@pytest_asyncio.fixture
async def producer(kafka_bootstrap_servers: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap_servers)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


def registry_on(servers: str, topic: str) -> KafkaLogRegistry:
    return KafkaLogRegistry(bootstrap_servers=servers, topic=topic)


async def test_creates_a_single_partition_topic_that_never_expires(
    kafka_bootstrap_servers: str, topic: str, kafka_admin: AIOKafkaAdminClient
) -> None:
    async with registry_on(kafka_bootstrap_servers, topic):
        pass
    (described,) = await kafka_admin.describe_topics([topic])
    assert len(described["partitions"]) == 1
    (response,) = await kafka_admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, None)]
    )
    entries = response.to_object()["resources"][0]["config_entries"]
    config = {e["config_names"]: e["config_value"] for e in entries}
    assert config["cleanup.policy"] == "delete"
    assert config["retention.ms"] == "-1"
    assert config["retention.bytes"] == "-1"
    assert config["min.insync.replicas"] == "1"


@pytest.mark.parametrize(
    ("partitions", "config", "problem"),
    [
        (2, {}, "it has 2 partitions"),
        (1, {"cleanup.policy": "compact"}, "cleanup.policy=compact"),
        (1, {"retention.ms": "86400000"}, "retention.ms=86400000"),
    ],
    ids=["two-partitions", "compacted", "expiring"],
)
async def test_refuses_a_topic_that_cannot_hold_the_log(
    kafka_bootstrap_servers: str,
    topic: str,
    create_topic: Callable[..., Awaitable[str]],
    partitions: int,
    config: dict[str, str],
    problem: str,
) -> None:
    await create_topic(topic, partitions=partitions, config=config)
    registry = registry_on(kafka_bootstrap_servers, topic)
    with pytest.raises(ConfigurationError, match=problem):
        await registry.start()
    with pytest.raises(ResourceStateError):
        await registry.list_subjects()


async def test_another_client_replays_the_same_state(
    kafka_bootstrap_servers: str, topic: str
) -> None:
    async with registry_on(kafka_bootstrap_servers, topic) as first:
        v1 = await first.register("orders-value", V1)
        await first.register("orders-value", V2)
        await first.set_compatibility(CompatibilityLevel.FULL, "orders-value")
        await first.register("copies-value", V1)
        await first.delete_subject("copies-value")
        async with registry_on(kafka_bootstrap_servers, topic) as second:
            assert await second.snapshot() == await first.snapshot()
            assert (await second.get_version("orders-value", 1)).id == v1.id
            assert await second.get_compatibility("orders-value") is CompatibilityLevel.FULL
            # Reads see what other clients wrote before the read began.
            v3 = await first.register("orders-value", V2.replace('"note"', '"remark"'))
            assert (await second.get_version("orders-value")).version == v3.version


async def test_a_schema_id_is_the_offset_of_its_first_registration(
    kafka_bootstrap_servers: str, topic: str
) -> None:
    async with registry_on(kafka_bootstrap_servers, topic) as registry:
        first = await registry.register("a-value", V1)  # offset 0 is the log's init marker
        await registry.set_compatibility(CompatibilityLevel.NONE)
        second = await registry.register("a-value", V2)
        assert (first.id, second.id) == (1, 3)


async def test_an_overtaken_command_is_void_and_its_writer_retries(
    kafka_bootstrap_servers: str, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        registry_on(kafka_bootstrap_servers, topic) as stale,
        registry_on(kafka_bootstrap_servers, topic) as other,
    ):
        catch_up = stale._catch_up
        skipped: list[bool] = []

        async def miss_the_first_catch_up() -> None:
            if not skipped:
                skipped.append(True)  # decide once on the state before `other` wrote
                return
            await catch_up()

        monkeypatch.setattr(stale, "_catch_up", miss_the_first_catch_up)
        v1 = await other.register("orders-value", V1)  # offset 1
        registered = await stale.register("orders-value", V2)  # void at 2, applied at 3
        assert skipped == [True]
        assert registered.version == 2
        assert registered.id == 3
        snapshot = await stale.snapshot()
        assert snapshot == await other.snapshot()
        assert snapshot["position"] == 4
        assert snapshot["subjects"]["orders-value"] == [[1, v1.id, False], [2, 3, False]]


async def test_every_reader_voids_a_command_whose_read_was_overtaken(
    kafka_bootstrap_servers: str, topic: str, producer: AIOKafkaProducer
) -> None:
    async with registry_on(kafka_bootstrap_servers, topic) as registry:
        await registry.register("orders-value", V1)  # offset 1
    # A writer that read only the init marker (read_upto=1) decided version 1 too: void.
    late = Register(
        subject="orders-value",
        schema='"string"',
        fingerprint="x",
        normalized_fingerprint="y",
        version=1,
        schema_id=None,
        read_upto=1,
        guard=Guard(subjects=("orders-value",)),
    )
    key, value = encode(late)
    await producer.send_and_wait(topic, value, key=key, partition=0)
    async with registry_on(kafka_bootstrap_servers, topic) as registry:
        assert await registry.list_versions("orders-value") == [1]
        assert json.loads((await registry.get_version("orders-value")).schema) == json.loads(V1)


async def test_records_that_are_not_commands_are_passed_over_alike(
    kafka_bootstrap_servers: str, topic: str, producer: AIOKafkaProducer
) -> None:
    async with registry_on(kafka_bootstrap_servers, topic) as first:
        await producer.send_and_wait(topic, b"not a command", partition=0)
        await producer.send_and_wait(topic, None, key=b"tombstone", partition=0)
        registered = await first.register("orders-value", V1)
        assert registered.id == 3
        async with registry_on(kafka_bootstrap_servers, topic) as second:
            assert await second.snapshot() == await first.snapshot()


async def test_a_newer_log_format_stops_the_reader(
    kafka_bootstrap_servers: str, topic: str, producer: AIOKafkaProducer
) -> None:
    async with registry_on(kafka_bootstrap_servers, topic):
        pass
    await producer.send_and_wait(
        topic, json.dumps({"format": FORMAT + 1, "op": "merge"}).encode(), partition=0
    )
    registry = registry_on(kafka_bootstrap_servers, topic)
    with pytest.raises(RegistryError, match="upgrade"):
        await registry.start()


async def test_a_known_id_is_resolved_without_io(
    kafka_bootstrap_servers: str, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with registry_on(kafka_bootstrap_servers, topic) as registry:
        registered = await registry.register("orders-value", V1)

        async def no_io() -> None:
            raise AssertionError("a known id must not touch the log")

        monkeypatch.setattr(registry, "_catch_up", no_io)
        assert json.loads((await registry.get_by_id(registered.id)).schema) == json.loads(V1)


async def test_an_unreachable_broker_is_a_retriable_error_naming_servers_and_topic() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    servers = f"127.0.0.1:{port}"
    registry = KafkaLogRegistry(bootstrap_servers=servers, topic="registry-log", request_timeout=2)
    with pytest.raises(RegistryUnavailable) as caught:
        await registry.start()
    assert caught.value.retriable
    assert servers in str(caught.value)
    assert "'registry-log'" in str(caught.value)


async def test_modes_are_log_state_every_reader_replays_and_enforces(
    kafka_bootstrap_servers: str, topic: str
) -> None:
    async with registry_on(kafka_bootstrap_servers, topic) as writer:
        await writer.set_mode(Mode.IMPORT, "imported-value")
        await writer.register("imported-value", V1, schema_id=900, version=4)
        await writer.set_compatibility(CompatibilityLevel.NONE, "orders-value")
        await writer.register("orders-value", V1)
        await writer.delete_compatibility("orders-value")
        await writer.set_mode(Mode.READONLY, "orders-value")
        async with registry_on(kafka_bootstrap_servers, topic) as reader:
            assert await reader.snapshot() == await writer.snapshot()
            assert await reader.get_mode("orders-value") is Mode.READONLY
            assert await reader.get_mode("imported-value") is Mode.IMPORT
            with pytest.raises(SettingNotFound):
                await reader.get_compatibility("orders-value", default_to_global=False)
            assert (await reader.get_version("imported-value")).id == 900
            with pytest.raises(OperationNotPermitted):
                await reader.delete_subject("orders-value")
            # A mode set by the reader binds the first writer at its next call.
            await reader.delete_mode("orders-value")
            await reader.set_mode(Mode.READONLY)
            with pytest.raises(OperationNotPermitted):
                await writer.register("orders-value", V2)
            assert await writer.get_mode("orders-value") is Mode.READONLY
            assert await reader.snapshot() == await writer.snapshot()
