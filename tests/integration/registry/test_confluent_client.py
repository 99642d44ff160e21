"""Every public method of confluent-kafka's ``SchemaRegistryClient`` against our REST server.

The server runs in-process on a free loopback port over the Kafka-log backend on the real
broker; the synchronous client runs in a worker thread so that the loop serving it stays free.
Each call's result is asserted, and the test fails if the installed client has a public method
it did not drive (a new client release then shows what to check). Methods for features the
registry does not serve (schema guids, associations, metadata) are asserted to fail the way a
Confluent registry without the feature answers.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from confluent_kafka.schema_registry import (
    AssociationCreateOrUpdateInfo,
    AssociationCreateOrUpdateRequest,
    ConfigCompatibilityLevel,
    Schema,
    SchemaReference,
    SchemaRegistryClient,
    ServerConfig,
)
from confluent_kafka.schema_registry.error import SchemaRegistryError

from eventplatform.registry.kafkalog import KafkaLogRegistry
from eventplatform.registry.rest_server import serve, server_url

pytestmark = pytest.mark.integration

PLACED = json.dumps(
    {
        "type": "record",
        "name": "OrderPlaced",
        "namespace": "com.acme",
        "fields": [{"name": "order_id", "type": "string"}],
    }
)
PLACED_WITH_NOTE = json.dumps(
    {
        "type": "record",
        "name": "OrderPlaced",
        "namespace": "com.acme",
        "fields": [
            {"name": "order_id", "type": "string"},
            {"name": "note", "type": ["null", "string"], "default": None},
        ],
    }
)
# A new field without a default: BACKWARD readers cannot read version 1 data.
PLACED_WITH_AMOUNT = json.dumps(
    {
        "type": "record",
        "name": "OrderPlaced",
        "namespace": "com.acme",
        "fields": [{"name": "order_id", "type": "string"}, {"name": "amount", "type": "long"}],
    }
)
MONEY = json.dumps(
    {
        "type": "record",
        "name": "Money",
        "namespace": "com.acme",
        "fields": [{"name": "cents", "type": "long"}],
    }
)
PAID = json.dumps(
    {
        "type": "record",
        "name": "OrderPaid",
        "namespace": "com.acme",
        "fields": [{"name": "amount", "type": "com.acme.Money"}],
    }
)


@pytest_asyncio.fixture
async def url(
    kafka_bootstrap_servers: str, unique_topic: Callable[[str], str]
) -> AsyncIterator[str]:
    registry = KafkaLogRegistry(
        bootstrap_servers=kafka_bootstrap_servers, topic=unique_topic("schemas")
    )
    async with registry:
        runner = await serve(registry, "127.0.0.1", 0)
        try:
            yield server_url(runner)
        finally:
            await runner.cleanup()


def public_methods() -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(SchemaRegistryClient)
        if not name.startswith("_") and callable(member)
    }


async def test_every_public_method_against_the_kafka_log_registry(url: str) -> None:
    client = SchemaRegistryClient({"url": url})
    driven: set[str] = set()

    async def drive(name: str, *args: Any, **kwargs: Any) -> Any:
        driven.add(name)
        return await asyncio.to_thread(getattr(client, name), *args, **kwargs)

    async def refused(name: str, *args: Any, **kwargs: Any) -> tuple[int, int, str]:
        with pytest.raises(SchemaRegistryError) as caught:
            await drive(name, *args, **kwargs)
        error = caught.value
        return error.http_status_code, error.error_code, error.error_message

    # -- client-side helpers --------------------------------------------------------------
    assert (await drive("config"))["url"] == url
    other = await drive("new_client", {"url": url})
    assert isinstance(other, SchemaRegistryClient)
    other.close()

    # -- registering and reading ----------------------------------------------------------
    assert await drive("get_schema_types") == ["AVRO"]
    first_id = await drive("register_schema", "orders-value", Schema(PLACED, "AVRO"))
    full = await drive(
        "register_schema_full_response", "orders-value", Schema(PLACED_WITH_NOTE, "AVRO")
    )
    assert (full.subject, full.version) == ("orders-value", 2)
    assert full.schema_id not in (None, first_id)
    assert json.loads(full.schema.schema_str) == json.loads(PLACED_WITH_NOTE)
    await drive("clear_caches")  # from here on every read goes to the server
    fetched = await drive("get_schema", first_id)
    assert json.loads(fetched.schema_str) == json.loads(PLACED)
    assert fetched.schema_type == "AVRO"
    assert await drive("get_subjects") == ["orders-value"]
    assert await drive("get_subjects", subject_prefix="audit") == []
    assert await drive("get_versions", "orders-value") == [1, 2]
    assert await drive("get_versions", "orders-value", limit=1) == [1]
    latest = await drive("get_latest_version", "orders-value")
    assert (latest.version, latest.schema_id) == (2, full.schema_id)
    await drive("clear_latest_caches")
    one = await drive("get_version", "orders-value", 1)
    assert (one.subject, one.version, one.schema_id) == ("orders-value", 1, first_id)
    found = await drive("lookup_schema", "orders-value", Schema(PLACED_WITH_NOTE, "AVRO"))
    assert (found.version, found.schema_id) == (2, full.schema_id)
    assert await drive("register_schema", "audit-value", Schema(PLACED, "AVRO")) == first_id
    assert sorted(await drive("get_subjects_by_schema_id", first_id)) == [
        "audit-value",
        "orders-value",
    ]
    assert await drive("get_subjects_by_schema_id", first_id, subject_name="audit-value") == [
        "audit-value"
    ]
    pairs = await drive("get_schema_versions", first_id)
    assert sorted((p.subject, p.version) for p in pairs) == [
        ("audit-value", 1),
        ("orders-value", 1),
    ]
    assert (await refused("get_schema", 987654))[:2] == (404, 40403)

    # -- references -----------------------------------------------------------------------
    await drive("register_schema", "money", Schema(MONEY, "AVRO"))
    reference = SchemaReference("com.acme.Money", "money", 1)
    paid_id = await drive(
        "register_schema", "paid-value", Schema(PAID, "AVRO", references=[reference])
    )
    assert await drive("get_referenced_by", "money", 1) == [paid_id]

    # -- compatibility --------------------------------------------------------------------
    note = Schema(PLACED_WITH_NOTE, "AVRO")
    amount = Schema(PLACED_WITH_AMOUNT, "AVRO")
    assert await drive("test_compatibility", "orders-value", note) is True
    assert await drive("test_compatibility", "orders-value", amount, verbose=True) is False
    assert await drive("test_compatibility", "nobody-value", amount) is True
    assert await drive("test_compatibility_all_versions", "orders-value", note) is True
    assert await drive("test_compatibility_all_versions", "orders-value", amount) is False
    status, code, message = await refused("register_schema", "orders-value", amount)
    assert (status, code) == (409, 409)
    assert "amount" in message

    # -- config ---------------------------------------------------------------------------
    assert await drive("get_compatibility") == "BACKWARD"
    # A subject without a level of its own: 40408, as Confluent answers without
    # defaultToGlobal (which this client does not send).
    assert (await refused("get_compatibility", "orders-value"))[:2] == (404, 40408)
    assert await drive("set_compatibility", "orders-value", "NONE") == {"compatibility": "NONE"}
    assert await drive("get_compatibility", "orders-value") == "NONE"
    assert await drive("set_compatibility", None, "FULL") == {"compatibility": "FULL"}
    assert (await drive("get_config")).compatibility_level is ConfigCompatibilityLevel.FULL
    config = ServerConfig(compatibility=ConfigCompatibilityLevel.FORWARD)
    assert await drive("set_config", "audit-value", config) == {"compatibility": "FORWARD"}
    audit = await drive("get_config", "audit-value")
    assert audit.compatibility_level is ConfigCompatibilityLevel.FORWARD
    removed = await drive("delete_config", "audit-value")
    assert removed.compatibility_level is ConfigCompatibilityLevel.FORWARD
    assert (await refused("get_config", "audit-value"))[:2] == (404, 40408)
    reset = await drive("delete_config")
    assert reset.compatibility_level is ConfigCompatibilityLevel.FULL
    assert await drive("get_compatibility") == "BACKWARD"
    status, code, _ = await refused("set_compatibility", None, "SIDEWAYS")
    assert (status, code) == (422, 42203)

    # -- modes ----------------------------------------------------------------------------
    assert await drive("get_global_mode") == "READWRITE"
    assert (await refused("get_mode", "orders-value"))[:2] == (404, 40409)
    assert await drive("update_mode", "orders-value", "READONLY") == "READONLY"
    assert await drive("get_mode", "orders-value") == "READONLY"
    status, code, message = await refused(
        "register_schema", "orders-value", Schema(PLACED_WITH_AMOUNT, "AVRO")
    )
    assert (status, code) == (422, 42205)
    assert "read-only" in message
    assert (await refused("delete_version", "orders-value", 2))[:2] == (422, 42205)
    assert await drive("delete_mode", "orders-value") == "READONLY"
    assert (await refused("update_mode", "orders-value", "IMPORT"))[:2] == (422, 42205)
    assert (await refused("update_global_mode", "SIDEWAYS"))[:2] == (422, 42204)
    assert await drive("update_global_mode", "READONLY") == "READONLY"
    assert (await refused("delete_subject", "audit-value"))[:2] == (422, 42205)
    assert await drive("update_global_mode", "READWRITE") == "READWRITE"
    assert await drive("update_mode", "fresh-value", "IMPORT") == "IMPORT"
    assert await drive("get_contexts") == [":.:"]

    # -- deleting -------------------------------------------------------------------------
    assert await drive("delete_version", "orders-value", 2) == 2
    assert await drive("get_versions", "orders-value") == [1]
    assert await drive("get_versions", "orders-value", deleted=True) == [1, 2]
    assert await drive("get_versions", "orders-value", deleted_only=True) == [2]
    assert (await refused("delete_subject", "audit-value", True))[:2] == (404, 40405)
    assert await drive("delete_subject", "audit-value") == [1]
    assert "audit-value" not in await drive("get_subjects")
    assert await drive("get_subjects", deleted_only=True) == ["audit-value"]
    assert await drive("delete_subject", "audit-value", True) == [1]
    assert "audit-value" not in await drive("get_subjects", deleted=True)

    # -- features not served: answered as a registry without them -------------------------
    assert (await drive("get_latest_with_metadata", "orders-value", {})).version == 1
    status, code, message = await refused(
        "get_latest_with_metadata", "orders-value", {"owner": "payments"}
    )
    assert (status, code) == (404, 40403)
    assert "metadata" in message
    assert (await refused("get_schema_by_guid", "0b0e2c9e-5b7a-4d8e-9c1f-3a6d2e1f0a11"))[:2] == (
        404,
        404,
    )
    association = AssociationCreateOrUpdateRequest(
        resource_name="orders",
        resource_namespace="lkc-1",
        resource_id="topic-1",
        resource_type="topic",
        associations=[AssociationCreateOrUpdateInfo(subject="orders-value")],
    )
    assert (await refused("create_association", association))[:2] == (404, 404)
    assert (await refused("get_associations_by_resource_name", "orders", "lkc-1"))[:2] == (
        404,
        404,
    )
    assert (await refused("delete_associations", "topic-1"))[:2] == (404, 404)

    await drive("close")
    await drive("close")  # safe more than once
    assert driven == public_methods(), sorted(public_methods() - driven)
