"""``produce`` a JSON-lines file and ``consume`` it back, through the real broker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from eventplatform.cloudevents import record_event_id
from eventplatform.registry.kafkalog import KafkaLogRegistry
from tests.integration.app.confluent import produce, registry_server
from tests.integration.cli.conftest import Invoke, Platform

ORDER_PLACED = "com.example.orders.OrderPlaced"


def order(n: int, customer: str) -> dict[str, Any]:
    return {
        "order_id": f"00000000-0000-4000-8000-{n:012d}",
        "customer_id": customer,
        "items": [{"sku": f"SKU-{n}", "quantity": n, "unit_price": "2.50"}],
        "total": f"{2.5 * n:.2f}",
        "currency": "EUR",
        "placed_at": "2026-05-01T12:00:00Z",
        "note": None if n % 2 else f"note {n}",
    }


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def create_topic(cli: Invoke, topic: str, partitions: int = 1) -> None:
    result = cli("topics", "create", topic, "--partitions", str(partitions))
    assert result.exit_code == 0, result.output


def records_in(servers: str, topic: str) -> int:
    async def count() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=servers)
        await admin.start()
        try:
            (described,) = await admin.describe_topics([topic])
        finally:
            await admin.close()
        partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        consumer = AIOKafkaConsumer(bootstrap_servers=servers)
        await consumer.start()
        try:
            return sum((await consumer.end_offsets(partitions)).values())
        finally:
            await consumer.stop()

    return asyncio.run(count())


def consumed(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_produce_then_consume_round_trips_events_with_metadata(
    cli: Invoke, catalogue: Path, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("orders")
    create_topic(cli, topic, partitions=2)
    sent = [order(1, "c-1"), order(2, "c-2"), order(3, "c-1")]
    events = write_lines(Path("orders.jsonl"), [json.dumps(e) for e in sent])

    produced = cli("produce", topic, "--type", ORDER_PLACED, "--key-field", "customer_id",
                   "-i", str(events))  # fmt: skip
    read = cli("consume", topic, "--from-beginning", "--max", "3")

    assert produced.exit_code == 0, produced.output
    assert f"produced 3 {ORDER_PLACED} events to {topic}" in produced.stdout
    assert read.exit_code == 0, read.output
    records = sorted(consumed(read.stdout), key=lambda r: r["value"]["order_id"])
    assert [r["key"] for r in records] == ["c-1", "c-2", "c-1"]
    assert len({r["partition"] for r in records if r["key"] == "c-1"}) == 1
    for record, event in zip(records, sent, strict=True):
        value = record["value"]
        assert record["topic"] == topic
        assert record["meta"]["type"] == ORDER_PLACED
        assert record["meta"]["source"] == "/tests/cli"
        assert record["meta"]["idempotency_key"] == record["meta"]["id"]
        assert value["order_id"] == event["order_id"]
        assert value["items"] == event["items"]
        assert value["total"] == event["total"]
        assert value["note"] == event["note"]
        assert datetime.fromisoformat(value["placed_at"]) == datetime.fromisoformat(
            event["placed_at"]
        )


def test_a_bad_line_names_line_and_field_and_nothing_is_written(
    cli: Invoke, catalogue: Path, platform: Platform, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("orders")
    create_topic(cli, topic)
    bad = order(3, "c-3")
    bad["items"][0]["quantity"] = "many"
    lines = [json.dumps(order(1, "c-1")), "", json.dumps(order(2, "c-2")), json.dumps(bad)]
    lines.append('{"order_id": ')

    result = cli("produce", topic, "--type", ORDER_PLACED, input="\n".join(lines))

    assert result.exit_code == 1
    assert "line 4: field items[0].quantity: Input should be a valid integer" in result.stderr
    assert "line 5: not a JSON object" in result.stderr
    assert "nothing was written" in result.stderr
    assert records_in(platform.bootstrap_servers, topic) == 0


def test_consume_reports_an_undecodable_record_and_goes_on(
    cli: Invoke, catalogue: Path, platform: Platform, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("mixed")
    create_topic(cli, topic)

    async def write_garbage() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=platform.bootstrap_servers)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"not avro", key=b"k")
        finally:
            await producer.stop()

    asyncio.run(write_garbage())
    cli("produce", topic, "--type", ORDER_PLACED, input=json.dumps(order(1, "c-1")))

    result = cli("consume", topic, "--from-beginning", "--max", "2")

    assert result.exit_code == 1
    assert f"NotWireFormat: topic '{topic}', partition 0, offset 0:" in result.stderr
    assert [r["offset"] for r in consumed(result.stdout)] == [1]
    assert "1 records printed, 1 undecodable" in result.stderr


def test_a_consumer_group_resumes_after_its_committed_offset(
    cli: Invoke, catalogue: Path, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("orders")
    create_topic(cli, topic)
    lines = "\n".join(json.dumps(order(n, "c-1")) for n in range(1, 4))
    cli("produce", topic, "--type", ORDER_PLACED, input=lines)
    group = unique_topic("group")

    first = cli("consume", topic, "--group", group, "--from-beginning", "--max", "2")
    rest = cli("consume", topic, "--group", group, "--from-beginning", "--idle-timeout", "2")

    assert [r["offset"] for r in consumed(first.stdout)] == [0, 1]
    assert [r["offset"] for r in consumed(rest.stdout)] == [2]


def test_consume_shows_the_derived_metadata_of_a_confluent_producers_records(
    cli: Invoke, platform: Platform, unique_topic: Callable[[str], str]
) -> None:
    topic = unique_topic("foreign")
    create_topic(cli, topic)

    async def write_with_confluent_kafka() -> None:
        # A stock Confluent client: registers through the REST API over the registry log
        # the CLI reads, and writes no CloudEvents headers.
        backend = KafkaLogRegistry(
            bootstrap_servers=platform.bootstrap_servers, topic=platform.registry_topic
        )
        async with backend, registry_server(backend) as url:
            await produce(
                platform.bootstrap_servers,
                url,
                topic,
                [(b"o-1", {"order_id": "o-1", "amount": 5}, [("x-tenant", b"acme")])],
            )

    before = datetime.now(UTC).replace(microsecond=0)
    asyncio.run(write_with_confluent_kafka())

    result = cli("consume", topic, "--from-beginning", "--max", "1")

    assert result.exit_code == 0, result.output
    (record,) = consumed(result.stdout)
    meta = record["meta"]
    derived_id = record_event_id(topic, 0, 0, record["timestamp"])
    assert meta == {
        "specversion": "1.0",
        "id": derived_id,
        "source": f"/topics/{topic}",
        "type": "com.example.orders.OrderPlaced",
        "time": meta["time"],
        "content_type": "application/avro",
        "idempotency_key": derived_id,
        "derived": True,
    }
    when = datetime.fromisoformat(meta["time"])
    assert when == datetime.fromtimestamp(record["timestamp"] / 1000, UTC)
    assert before <= when <= datetime.now(UTC)
    assert record["value"] == {"order_id": "o-1", "amount": 5}
    assert record["headers"] == {"x-tenant": "acme"}
