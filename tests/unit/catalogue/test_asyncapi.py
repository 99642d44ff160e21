"""The AsyncAPI 3.0 document of the demo deployment, validated against the official schema."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from jsonschema import Draft7Validator

from eventplatform.catalogue import EventCatalogue, asyncapi_document
from eventplatform.catalogue.asyncapi import AVRO_SCHEMA_FORMAT, avro_spec_form
from tests.unit.catalogue.conftest import SECRETS
from tests.unit.catalogue.official_schema import asyncapi_validator

PLACED = "com.example.orders.OrderPlaced"


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    return asyncapi_validator()


def _errors(validator: Draft7Validator, document: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
        for e in validator.iter_errors(document)
    ]


@pytest.mark.slow
def test_the_document_validates_against_the_official_asyncapi_3_schema(
    demo: EventCatalogue, validator: Draft7Validator
) -> None:
    document = asyncapi_document(demo, registry_url="http://127.0.0.1:8081")

    assert _errors(validator, document) == []
    assert document["asyncapi"] == "3.0.0"


@pytest.mark.slow
def test_the_validation_catches_what_the_spec_forbids(
    demo: EventCatalogue, validator: Draft7Validator
) -> None:
    # The validator is not vacuous: AsyncAPI 2's action name, and an Avro payload with a
    # full name where Avro's JSON Schema wants a short one, are both refused.
    document = asyncapi_document(demo)
    wrong_action = copy.deepcopy(document)
    next(iter(wrong_action["operations"].values()))["action"] = "publish"
    full_name = copy.deepcopy(document)
    full_name["components"]["messages"][PLACED]["payload"]["schema"]["name"] = PLACED

    assert _errors(validator, wrong_action)
    assert any(e.startswith(f"components/messages/{PLACED}") for e in _errors(validator, full_name))


def test_channels_messages_and_operations(demo: EventCatalogue) -> None:
    document = asyncapi_document(demo, registry_url="http://127.0.0.1:8081")

    orders = document["channels"]["orders"]
    assert orders["address"] == "orders"
    assert orders["messages"] == {PLACED: {"$ref": f"#/components/messages/{PLACED}"}}
    assert orders["bindings"]["kafka"]["topic"] == "orders"
    message = document["components"]["messages"][PLACED]
    assert message["payload"]["schemaFormat"] == AVRO_SCHEMA_FORMAT
    assert message["payload"]["schema"]["name"] == "OrderPlaced"
    assert message["payload"]["schema"]["namespace"] == "com.example.orders"
    headers = document["components"]["schemas"]["CloudEventsHeaders"]["properties"]
    for name in ("ce_id", "ce_source", "ce_type", "ce_time", "ce_subject", "ce_idempotencykey",
                 "content-type", "traceparent"):  # fmt: skip
        assert name in headers
    actions = {key: op["action"] for key, op in document["operations"].items()}
    assert actions == {
        "orders.send.orders": "send",
        "orders-signed.send.orders": "send",
        "orders-file.receive.orders": "receive",
        "orders-out.receive.orders": "receive",
        "billing.bill.orders": "receive",
        "billing.book_payment.payments": "receive",
    }
    bill = document["operations"]["billing.bill.orders"]
    assert bill["messages"] == [{"$ref": f"#/channels/orders/messages/{PLACED}"}]
    assert bill["bindings"]["kafka"]["groupId"] == {"type": "string", "enum": ["billing-service"]}
    signed = document["operations"]["orders-signed.send.orders"]
    assert signed["security"] == [{"$ref": "#/components/securitySchemes/standardWebhooks"}]
    keyed = document["operations"]["orders.send.orders"]
    assert {s["$ref"].rpartition("/")[2] for s in keyed["security"]} == {"apiKey", "bearer"}
    kafka = document["servers"]["kafka"]
    assert (kafka["host"], kafka["protocol"]) == ("127.0.0.1:9092", "kafka")
    assert kafka["bindings"]["kafka"]["schemaRegistryUrl"] == "http://127.0.0.1:8081"
    assert document["servers"]["ingress-127.0.0.1_8080"]["protocol"] == "http"


def test_no_secret_reaches_the_document(demo: EventCatalogue) -> None:
    text = repr(asyncapi_document(demo))
    for value in SECRETS.values():
        assert value not in text


def test_avro_names_are_split_into_name_and_namespace() -> None:
    schema = {
        "type": "record",
        "name": "a.b.Outer",
        "aliases": ["a.b.Old", "c.Other"],
        "fields": [
            {"name": "inner", "type": {"type": "enum", "name": "a.b.Kind", "symbols": ["X"]}},
            {"name": "again", "type": "a.b.Kind"},
            {"name": "foreign", "type": {"type": "fixed", "name": "d.Id", "size": 4}},
            {"name": "plain", "type": {"type": "fixed", "name": "Raw", "namespace": "", "size": 2}},
        ],
    }
    spec = avro_spec_form(schema)
    assert (spec["name"], spec["namespace"], spec["aliases"]) == (
        "Outer",
        "a.b",
        ["Old", "c.Other"],
    )
    inner, again, foreign, plain = (f["type"] for f in spec["fields"])
    assert inner == {"type": "enum", "name": "Kind", "symbols": ["X"]}
    assert again == "Kind"
    assert foreign == {"type": "fixed", "name": "Id", "namespace": "d", "size": 4}
    assert plain == {"type": "fixed", "name": "Raw", "namespace": "", "size": 2}
