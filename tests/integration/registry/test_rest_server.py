"""The REST server, driven by a third-party client: confluent-kafka's SchemaRegistryClient.

The server runs in-process on a free loopback port over each backend (the Kafka-log one on the
session's real broker, and the memory one); confluent-kafka's synchronous client runs in a
worker thread so that the event loop serving it stays free.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import aiohttp
import pytest
import pytest_asyncio
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from eventplatform.registry.base import SchemaRegistry
from eventplatform.registry.kafkalog import KafkaLogRegistry
from eventplatform.registry.memory import MemoryRegistry
from eventplatform.registry.rest_client import CONTENT_TYPE, RestRegistry
from eventplatform.registry.rest_server import serve, server_url

pytestmark = pytest.mark.integration

T = TypeVar("T")

PLACED = """{
  "type": "record", "name": "OrderPlaced", "namespace": "com.acme.orders",
  "fields": [{"name": "order_id", "type": "string"}]
}"""
PLACED_WITH_NOTE = """{
  "type": "record", "name": "OrderPlaced", "namespace": "com.acme.orders",
  "fields": [
    {"name": "order_id", "type": "string"},
    {"name": "note", "type": ["null", "string"], "default": null}
  ]
}"""
# A new field without a default: a BACKWARD reader cannot read version 1 data.
PLACED_WITH_AMOUNT = """{
  "type": "record", "name": "OrderPlaced", "namespace": "com.acme.orders",
  "fields": [{"name": "order_id", "type": "string"}, {"name": "amount", "type": "long"}]
}"""


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking confluent-kafka call off the loop that serves it."""
    return await asyncio.to_thread(function, *args, **kwargs)


@pytest_asyncio.fixture(params=["kafkalog", "memory"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[SchemaRegistry]:
    registry: SchemaRegistry
    if request.param == "kafkalog":
        registry = KafkaLogRegistry(
            bootstrap_servers=request.getfixturevalue("kafka_bootstrap_servers"),
            topic=request.getfixturevalue("unique_topic")("schemas"),
        )
    else:
        registry = MemoryRegistry()
    async with registry:
        yield registry


@pytest_asyncio.fixture
async def url(backend: SchemaRegistry) -> AsyncIterator[str]:
    runner = await serve(backend, "127.0.0.1", 0)
    try:
        yield server_url(runner)
    finally:
        await runner.cleanup()


@pytest.fixture
def confluent(url: str) -> Iterator[SchemaRegistryClient]:
    with SchemaRegistryClient({"url": url}) as client:
        yield client


async def http(method: str, url: str, body: Any = None) -> tuple[int, Any, str]:
    """One raw request; returns status, decoded JSON (or text) and the content type."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, json=body) as response,
    ):
        text = await response.text()
        try:
            payload: Any = await response.json(content_type=None)
        except ValueError:
            payload = text
        return response.status, payload, response.content_type


async def test_register_and_read_back(confluent: SchemaRegistryClient) -> None:
    first = await call(confluent.register_schema, "orders-value", Schema(PLACED, "AVRO"))
    second = await call(confluent.register_schema, "orders-value", Schema(PLACED_WITH_NOTE, "AVRO"))

    by_id = await call(confluent.get_schema, first)
    latest = await call(confluent.get_latest_version, "orders-value")
    one = await call(confluent.get_version, "orders-value", 1)

    assert first != second
    assert "OrderPlaced" in by_id.schema_str
    assert (latest.version, latest.schema_id) == (2, second)
    assert (one.version, one.schema_id) == (1, first)
    assert await call(confluent.get_versions, "orders-value") == [1, 2]
    assert await call(confluent.get_subjects) == ["orders-value"]


async def test_registering_again_returns_the_same_id(confluent: SchemaRegistryClient) -> None:
    first = await call(confluent.register_schema, "orders-value", Schema(PLACED, "AVRO"))
    confluent.clear_caches()
    again = await call(confluent.register_schema, "orders-value", Schema(PLACED, "AVRO"))
    elsewhere = await call(confluent.register_schema, "audit-value", Schema(PLACED, "AVRO"))

    assert again == first
    assert elsewhere == first
    assert sorted(await call(confluent.get_subjects_by_schema_id, first)) == [
        "audit-value",
        "orders-value",
    ]
    versions = await call(confluent.get_schema_versions, first)
    assert sorted((v.subject, v.version) for v in versions) == [
        ("audit-value", 1),
        ("orders-value", 1),
    ]


async def test_lookup(confluent: SchemaRegistryClient) -> None:
    schema_id = await call(confluent.register_schema, "orders-value", Schema(PLACED, "AVRO"))

    found = await call(confluent.lookup_schema, "orders-value", Schema(PLACED, "AVRO"))

    assert (found.subject, found.version, found.schema_id) == ("orders-value", 1, schema_id)
    with pytest.raises(SchemaRegistryError) as info:
        await call(confluent.lookup_schema, "orders-value", Schema(PLACED_WITH_NOTE, "AVRO"))
    assert (info.value.http_status_code, info.value.error_code) == (404, 40403)


async def test_incompatible_schema_is_409_with_the_reason(
    confluent: SchemaRegistryClient,
) -> None:
    await call(confluent.register_schema, "orders-value", Schema(PLACED, "AVRO"))

    with pytest.raises(SchemaRegistryError) as info:
        await call(confluent.register_schema, "orders-value", Schema(PLACED_WITH_AMOUNT, "AVRO"))

    assert (info.value.http_status_code, info.value.error_code) == (409, 409)
    assert "incompatible" in info.value.error_message
    assert "amount" in info.value.error_message
    assert await call(confluent.get_versions, "orders-value") == [1]


async def test_compatibility_check(confluent: SchemaRegistryClient, url: str) -> None:
    await call(confluent.register_schema, "orders-value", Schema(PLACED, "AVRO"))

    assert await call(
        confluent.test_compatibility, "orders-value", Schema(PLACED_WITH_NOTE, "AVRO")
    )
    assert not await call(
        confluent.test_compatibility, "orders-value", Schema(PLACED_WITH_AMOUNT, "AVRO")
    )
    status, verbose, _ = await http(
        "POST",
        f"{url}/compatibility/subjects/orders-value/versions/1?verbose=true",
        {"schema": PLACED_WITH_AMOUNT},
    )
    assert status == 200
    assert verbose["is_compatible"] is False
    assert any("amount" in message for message in verbose["messages"])


async def test_config_global_and_per_subject(confluent: SchemaRegistryClient) -> None:
    await call(confluent.register_schema, "orders-value", Schema(PLACED, "AVRO"))

    assert await call(confluent.get_compatibility) == "BACKWARD"
    await call(confluent.set_compatibility, "orders-value", "NONE")
    await call(confluent.set_compatibility, None, "FULL")

    assert await call(confluent.get_compatibility, "orders-value") == "NONE"
    assert await call(confluent.get_compatibility) == "FULL"
    # NONE lets the change FULL would refuse through.
    await call(confluent.register_schema, "orders-value", Schema(PLACED_WITH_AMOUNT, "AVRO"))
    with pytest.raises(SchemaRegistryError) as info:
        await call(confluent.set_compatibility, None, "SIDEWAYS")
    assert (info.value.http_status_code, info.value.error_code) == (422, 42203)


async def test_soft_then_permanent_delete(confluent: SchemaRegistryClient) -> None:
    await call(confluent.register_schema, "orders-value", Schema(PLACED, "AVRO"))
    await call(confluent.register_schema, "orders-value", Schema(PLACED_WITH_NOTE, "AVRO"))

    with pytest.raises(SchemaRegistryError) as early:
        await call(confluent.delete_version, "orders-value", 2, True)
    assert (early.value.http_status_code, early.value.error_code) == (404, 40407)

    assert await call(confluent.delete_version, "orders-value", 2) == 2
    assert await call(confluent.get_versions, "orders-value") == [1]
    assert await call(confluent.delete_subject, "orders-value") == [1]
    assert await call(confluent.get_subjects) == []
    assert await call(confluent.delete_subject, "orders-value", True) == [1, 2]
    with pytest.raises(SchemaRegistryError) as gone:
        await call(confluent.get_versions, "orders-value")
    assert (gone.value.http_status_code, gone.value.error_code) == (404, 40401)


async def test_permanent_delete_before_soft_is_40405(confluent: SchemaRegistryClient) -> None:
    await call(confluent.register_schema, "orders-value", Schema(PLACED, "AVRO"))

    with pytest.raises(SchemaRegistryError) as info:
        await call(confluent.delete_subject, "orders-value", True)

    assert (info.value.http_status_code, info.value.error_code) == (404, 40405)


async def test_unknown_names_get_confluent_codes(confluent: SchemaRegistryClient) -> None:
    await call(confluent.register_schema, "orders-value", Schema(PLACED, "AVRO"))
    cases = [
        (confluent.get_latest_version, ("nobody-value",), 40401),
        (confluent.get_version, ("orders-value", 9), 40402),
        (confluent.get_schema, (987654,), 40403),
    ]
    for function, args, code in cases:
        with pytest.raises(SchemaRegistryError) as info:
            await call(function, *args)
        assert (info.value.http_status_code, info.value.error_code) == (404, code)


async def test_invalid_schema_is_422(confluent: SchemaRegistryClient) -> None:
    bad = '{"type": "record", "name": "Broken", "fields": [{"name": "x", "type": "nope"}]}'

    with pytest.raises(SchemaRegistryError) as info:
        await call(confluent.register_schema, "broken-value", Schema(bad, "AVRO"))

    assert (info.value.http_status_code, info.value.error_code) == (422, 42201)


async def test_avro_serializer_round_trips_through_the_server(
    confluent: SchemaRegistryClient,
) -> None:
    serializer = AvroSerializer(confluent, PLACED_WITH_NOTE)
    deserializer = AvroDeserializer(confluent)
    context = SerializationContext("orders", MessageField.VALUE)
    event = {"order_id": "o-1", "note": "gift wrap"}

    framed = await call(serializer, event, context)
    decoded = await call(deserializer, framed, context)

    registered = await call(confluent.get_latest_version, "orders-value")
    assert framed[0] == 0
    assert int.from_bytes(framed[1:5], "big") == registered.schema_id
    assert decoded == event


async def test_plain_endpoints(url: str) -> None:
    await http("POST", f"{url}/subjects/orders-value/versions", {"schema": PLACED})

    assert await http("GET", f"{url}/") == (200, {}, CONTENT_TYPE)
    assert (await http("GET", f"{url}/schemas/types"))[1] == ["AVRO"]
    status, text, _ = await http("GET", f"{url}/subjects/orders-value/versions/latest/schema")
    assert status == 200
    assert text["name"] == "OrderPlaced"
    assert (await http("GET", f"{url}/mode"))[1] == {"mode": "READWRITE"}
    status, listed, _ = await http("GET", f"{url}/schemas?subjectPrefix=orders")
    assert status == 200
    assert [(s["subject"], s["version"]) for s in listed] == [("orders-value", 1)]
    assert (await http("GET", f"{url}/schemas?subjectPrefix=audit"))[1] == []


async def test_references_through_the_confluent_client(
    confluent: SchemaRegistryClient, url: str
) -> None:
    money = (
        '{"type": "record", "name": "Money", "namespace": "com.acme",'
        ' "fields": [{"name": "cents", "type": "long"}]}'
    )
    paid = (
        '{"type": "record", "name": "OrderPaid", "namespace": "com.acme.orders",'
        ' "fields": [{"name": "amount", "type": "com.acme.Money"}]}'
    )
    await call(confluent.register_schema, "money", Schema(money, "AVRO"))
    reference = SchemaReference("com.acme.Money", "money", 1)

    paid_id = await call(
        confluent.register_schema, "paid-value", Schema(paid, "AVRO", references=[reference])
    )

    fetched = await call(confluent.get_schema, paid_id)
    assert [(r.name, r.subject, r.version) for r in fetched.references] == [
        ("com.acme.Money", "money", 1)
    ]
    status, users, _ = await http("GET", f"{url}/subjects/money/versions/1/referencedby")
    assert (status, users) == (200, [paid_id])


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/subjects/orders-value/versions/zero", 422, 42202),
        ("GET", "/subjects/orders-value/versions/0", 422, 42202),
        ("GET", "/no/such/endpoint", 404, 404),
        ("PATCH", "/subjects", 405, 405),
    ],
)
async def test_refusals_have_confluent_bodies(
    url: str, method: str, path: str, status: int, code: int
) -> None:
    answer, body, content_type = await http(method, f"{url}{path}")

    assert (answer, body["error_code"]) == (status, code)
    assert body["message"]
    assert content_type == CONTENT_TYPE


async def test_basic_auth_is_enforced(backend: SchemaRegistry) -> None:
    runner = await serve(backend, "127.0.0.1", 0, username="svc", password="pa:ss")
    url = server_url(runner)
    try:
        status, body, _ = await http("GET", f"{url}/subjects")
        assert (status, body["error_code"]) == (401, 401)
        with SchemaRegistryClient({"url": url, "basic.auth.user.info": "svc:pa:ss"}) as client:
            assert await call(client.get_subjects) == []
    finally:
        await runner.cleanup()


async def test_cli_serves_the_kafka_log_registry_with_auth_from_settings(
    kafka_bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> None:
    environment = {
        **os.environ,
        "EVENTPLATFORM_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
        "EVENTPLATFORM_REGISTRY__USERNAME": "svc",
        "EVENTPLATFORM_REGISTRY__PASSWORD": "s3cret",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from eventplatform.cli.registry import app; app()",
        "serve",
        "--port",
        "0",
        "--topic",
        unique_topic("schemas"),
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
        assert line.startswith(b"url=http://127.0.0.1:"), line
        url = line.decode().strip().removeprefix("url=")
        async with RestRegistry(url, username="svc", password="s3cret") as registry:
            registered = await registry.register("orders-value", PLACED)
            assert registered.version == 1
        status, _, _ = await http("GET", f"{url}/subjects")
        assert status == 401
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert b"stopping the schema registry" in stderr


async def test_subject_config_without_default_to_global(url: str) -> None:
    await http("PUT", f"{url}/config", {"compatibility": "FULL"})

    status, body, _ = await http("GET", f"{url}/config/orders-value")
    assert (status, body["error_code"]) == (404, 40408)
    assert "does not have subject-level compatibility configured" in body["message"]
    assert await http("GET", f"{url}/config/orders-value?defaultToGlobal=true") == (
        200,
        {"compatibilityLevel": "FULL"},
        CONTENT_TYPE,
    )
    assert (await http("PUT", f"{url}/config/orders-value", {"compatibilityLevel": "NONE"}))[
        :2
    ] == (200, {"compatibility": "NONE"})
    assert (await http("DELETE", f"{url}/config/orders-value"))[:2] == (
        200,
        {"compatibilityLevel": "NONE"},
    )
    status, body, _ = await http("DELETE", f"{url}/config/orders-value")
    assert (status, body["error_code"]) == (404, 40408)
    assert (await http("DELETE", f"{url}/config"))[:2] == (200, {"compatibilityLevel": "FULL"})
    assert (await http("GET", f"{url}/config"))[1] == {"compatibilityLevel": "BACKWARD"}
    status, body, _ = await http(
        "PUT", f"{url}/config", {"compatibility": "FULL", "defaultRuleSet": {"domainRules": []}}
    )
    assert (status, body["error_code"]) == (422, 42203)
    assert "defaultRuleSet" in body["message"]


async def test_mode_endpoints_and_their_enforcement(url: str) -> None:
    status, body, _ = await http("GET", f"{url}/mode/orders-value")
    assert (status, body["error_code"]) == (404, 40409)
    assert (await http("GET", f"{url}/mode/orders-value?defaultToGlobal=true"))[1] == {
        "mode": "READWRITE"
    }
    assert (await http("PUT", f"{url}/mode", {"mode": "readonly"}))[:2] == (
        200,
        {"mode": "READONLY"},
    )
    status, body, _ = await http(
        "POST", f"{url}/subjects/orders-value/versions", {"schema": PLACED}
    )
    assert (status, body["error_code"]) == (422, 42205)
    assert (await http("DELETE", f"{url}/mode"))[:2] == (200, {"mode": "READONLY"})
    assert (await http("GET", f"{url}/mode"))[1] == {"mode": "READWRITE"}
    status, body, _ = await http("PUT", f"{url}/mode/orders-value", {"mode": "SIDEWAYS"})
    assert (status, body["error_code"]) == (422, 42204)
    assert "READWRITE, READONLY, IMPORT" in body["message"]

    # IMPORT: the body's id and version are kept; a registration without them is refused.
    assert (await http("PUT", f"{url}/mode/orders-value", {"mode": "IMPORT"}))[1] == {
        "mode": "IMPORT"
    }
    status, body, _ = await http(
        "POST", f"{url}/subjects/orders-value/versions", {"schema": PLACED, "id": 777, "version": 5}
    )
    assert status == 200
    assert (body["id"], body["version"], body["subject"]) == (777, 5, "orders-value")
    assert (await http("GET", f"{url}/schemas/ids/777"))[0] == 200
    status, body, _ = await http(
        "POST", f"{url}/subjects/orders-value/versions", {"schema": PLACED_WITH_NOTE}
    )
    assert (status, body["error_code"]) == (422, 42205)
    assert "import" in body["message"].lower()
    assert (await http("DELETE", f"{url}/mode/orders-value"))[1] == {"mode": "IMPORT"}
    status, body, _ = await http(
        "POST", f"{url}/subjects/orders-value/versions", {"schema": PLACED_WITH_NOTE, "id": 9}
    )
    assert (status, body["error_code"]) == (422, 42205)
    status, body, _ = await http("PUT", f"{url}/mode/orders-value", {"mode": "IMPORT"})
    assert (status, body["error_code"]) == (422, 42205)
    forced = await http("PUT", f"{url}/mode/orders-value?force=true", {"mode": "IMPORT"})
    assert forced[:2] == (200, {"mode": "IMPORT"})


async def test_compatibility_of_a_subject_that_does_not_exist(url: str) -> None:
    for path in ("versions/latest", "versions", "versions/latest?verbose=true"):
        status, body, _ = await http(
            "POST", f"{url}/compatibility/subjects/nobody-value/{path}", {"schema": PLACED}
        )
        assert status == 200
        assert body["is_compatible"] is True
        assert ("messages" in body) == path.endswith("verbose=true")
    status, body, _ = await http(
        "POST", f"{url}/compatibility/subjects/nobody-value/versions/1", {"schema": PLACED}
    )
    assert (status, body["error_code"]) == (404, 40401)


async def test_verbose_compatibility_carries_the_reasons(url: str) -> None:
    await http("POST", f"{url}/subjects/orders-value/versions", {"schema": PLACED})
    for query, shown in (("?verbose=true", True), ("", False)):
        status, body, _ = await http(
            "POST",
            f"{url}/compatibility/subjects/orders-value/versions/latest{query}",
            {"schema": PLACED_WITH_AMOUNT},
        )
        assert status == 200
        assert body["is_compatible"] is False
        assert ("messages" in body) is shown
        if shown:
            assert any("amount" in message for message in body["messages"])


async def test_only_the_default_context_is_served(url: str) -> None:
    assert (await http("GET", f"{url}/contexts"))[:2] == (200, [":.:"])
    status, body, _ = await http(
        "POST", f"{url}/subjects/:.:orders-value/versions", {"schema": PLACED}
    )
    assert (status, body["subject"]) == (200, "orders-value")
    assert (await http("GET", f"{url}/subjects"))[1] == ["orders-value"]
    status, body, _ = await http("GET", f"{url}/subjects/:.staging:orders-value/versions")
    assert (status, body["error_code"]) == (422, 42208)
    assert "default context" in body["message"]


@pytest.mark.parametrize(
    ("kind", "schema"),
    [
        ("JSON", '{"type": "object", "properties": {"id": {"type": "string"}}}'),
        ("PROTOBUF", 'syntax = "proto3"; message Order { string id = 1; }'),
    ],
)
async def test_json_schema_and_protobuf_are_refused(url: str, kind: str, schema: str) -> None:
    for path in ("subjects/orders-value/versions", "compatibility/subjects/orders-value/versions"):
        status, body, _ = await http(
            "POST", f"{url}/{path}", {"schema": schema, "schemaType": kind}
        )
        assert (status, body["error_code"]) == (422, 42201)
        assert "only AVRO" in body["message"]
    assert (await http("GET", f"{url}/subjects"))[1] == []


async def test_metadata_and_rule_sets_are_refused_not_dropped(url: str) -> None:
    for extra in (
        {"metadata": {"properties": {"owner": "payments"}}},
        {"ruleSet": {"domainRules": [{"name": "r", "kind": "CONDITION", "type": "CEL"}]}},
    ):
        status, body, _ = await http(
            "POST", f"{url}/subjects/orders-value/versions", {"schema": PLACED, **extra}
        )
        assert (status, body["error_code"]) == (422, 42201)
        assert next(iter(extra)) in body["message"]
    assert (await http("GET", f"{url}/subjects"))[1] == []
